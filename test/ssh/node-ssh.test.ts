// What node-ssh 13.2.1 does on its own (pinned here, so an upgrade that changes it is noticed) and how
// src/ssh/session.ts, which runs on it, deals with it: connect() rejecting on ssh2's non-fatal agent
// error, execCommand's per-chunk decoding, a PassThrough stdin keeping the channel open.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { NodeSSH } from 'node-ssh';
import { ConnectError } from '../../src/errors.js';
import { connect } from '../../src/ssh/session.js';
import { sshKeygen, tempDir, type TestKey } from './keygen.js';
import { startTestServer, type TestServer } from './server.js';

const tmp = tempDir();
let clientKey: TestKey;
let stranger: TestKey;
let server: TestServer;
let knownHosts: string;

before(async () => {
  clientKey = sshKeygen(tmp.dir, 'client', 'ed25519');
  stranger = sshKeygen(tmp.dir, 'stranger', 'ed25519');
  server = await startTestServer({ dir: tmp.dir, clientKey });
  knownHosts = join(tmp.dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${server.port} ${server.hostKey.pub}\n`);
});
after(async () => {
  await server.close();
  tmp.cleanup();
});

const bare = (over: Record<string, unknown>) => ({
  host: '127.0.0.1',
  port: server.port,
  username: 'kha',
  hostVerifier: () => true,
  readyTimeout: 5000,
  ...over,
});

describe('node-ssh 13.2.1 on its own', () => {
  it('connect() rejects on the non-fatal agent error ssh2 emits for a dead ssh-agent (ssh2 would go on)', async () => {
    const ssh = new NodeSSH();
    // The stranger key is refused, then ssh2 tries the agent: its dead socket is an 'error' at level 'agent'.
    const err = (await ssh.connect(bare({ privateKey: readFileSync(stranger.file, 'utf8'), agent: join(tmp.dir, 'gone.sock') })).then(
      () => assert.fail('connected'),
      (e: Error & { level?: string }) => e,
    )) as Error & { level?: string };
    assert.equal(err.level, 'agent');
    assert.match(err.message, /agent/i);
    ssh.connection?.on('error', () => undefined);
    ssh.connection?.destroy(); // node-ssh does not dispose it
  });

  it("execCommand's returned stdout decodes each chunk alone; onStdout gets the raw Buffers", async () => {
    const ssh = await new NodeSSH().connect(bare({ privateKey: readFileSync(clientKey.file, 'utf8') }));
    try {
      const chunks: Buffer[] = [];
      // 'é' is C3 A9: its first byte ends one chunk, its second starts the next.
      const r = await ssh.execCommand(`sh -c "printf 'a\\303'; sleep 0.3; printf '\\251b'"`, { onStdout: (c) => chunks.push(c) });
      assert.ok(chunks.length >= 2, 'two chunks');
      assert.equal(Buffer.concat(chunks).toString('utf8'), 'aéb');
      assert.equal(r.stdout, 'a\uFFFD\uFFFDb', 'node-ssh decodes each chunk alone');
    } finally {
      ssh.dispose();
    }
  });

  it('a PassThrough as stdin keeps the channel open until it ends', async () => {
    const ssh = await new NodeSSH().connect(bare({ privateKey: readFileSync(clientKey.file, 'utf8') }));
    try {
      const stdin = new PassThrough();
      let out = '';
      const done = ssh.execCommand('cat', { stdin, noTrim: true, onStdout: (c) => (out += c.toString()) });
      stdin.write('one\n');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(out, 'one\n', 'the command is still running and answered the first write');
      stdin.write('two\n');
      stdin.end();
      const r = await done;
      assert.equal(r.code, 0);
      assert.equal(out, 'one\ntwo\n');
    } finally {
      ssh.dispose();
    }
  });
});

describe('kha-deploy on node-ssh', () => {
  it('a dead agent does not end the connect: the refusal is an authentication failure naming the agent failure', async () => {
    const home = join(tmp.dir, 'home');
    mkdirSync(join(home, '.ssh'), { recursive: true });
    writeFileSync(join(home, '.ssh', 'id_ed25519'), readFileSync(stranger.file), { mode: 0o600 }); // refused by the server
    const err = await connect({
      host: 'cp-a',
      address: '127.0.0.1',
      port: server.port,
      user: 'kha',
      agentSocket: join(tmp.dir, 'gone.sock'),
      become: false,
      knownHostsFile: knownHosts,
      acceptNewHostKeys: false,
      homeDir: home,
    }).then(
      () => assert.fail('connected'),
      (e: Error) => e,
    );
    assert.ok(err instanceof ConnectError, String(err));
    assert.match(err.message, /authentication failed for kha@127\.0\.0\.1:\d+ \(tried: ssh-agent at .*gone\.sock, key .*id_ed25519, \(ssh-agent failed: .*\)\)/);
  });

  it('a character split across chunks reaches the caller intact (the Buffers are joined, not the strings)', async () => {
    const s = await connect({
      host: 'cp-a',
      address: '127.0.0.1',
      port: server.port,
      user: 'kha',
      privateKeyFile: clientKey.file,
      become: false,
      knownHostsFile: knownHosts,
      acceptNewHostKeys: false,
    });
    try {
      assert.equal((await s.run("printf 'a\\303'; sleep 0.3; printf '\\251b'")).stdout, 'aéb');
    } finally {
      await s.close();
    }
  });
});
