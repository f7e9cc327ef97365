// Jump hosts at the SSH level: a bastion (in-process ssh2 server that allows direct-tcpip to
// loopback) in front of a second server; every hop's host key verified, errors naming the hop, one
// bastion connection shared by the masters of a run, and the connector reading a generated ssh_config.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConnectError, HostKeyError, UsageError } from '../../src/errors.js';
import { connector, readCredentials, resolveRoutes } from '../../src/commands/common.js';
import { JumpPool, connect, type ConnectOptions, type JumpHop } from '../../src/ssh/session.js';
import type { HostSpec } from '../../src/types.js';
import { sshKeygen, tempDir, type TestKey } from './keygen.js';
import { startTestServer, type TestServer } from './server.js';

const tmp = tempDir('kha-jump-test-');
let clientKey: TestKey;
let bastion: TestServer;
let target: TestServer;
let target2: TestServer;
let closed: TestServer; // refuses forwarding
let knownHosts: string;
const home = join(tmp.dir, 'home');

const line = (s: TestServer) => `[127.0.0.1]:${s.port} ${s.hostKey.pub}`;

function hop(over: Partial<JumpHop> = {}): JumpHop {
  return { address: '127.0.0.1', port: bastion.port, user: 'ops', privateKeyFile: clientKey.file, knownHostsFile: knownHosts, acceptNewHostKeys: false, ...over };
}

function options(over: Partial<ConnectOptions> = {}): ConnectOptions {
  return {
    host: 'master1',
    address: '127.0.0.1',
    port: target.port,
    user: 'kha',
    privateKeyFile: clientKey.file,
    become: false,
    knownHostsFile: knownHosts,
    acceptNewHostKeys: false,
    homeDir: home,
    jumps: [hop()],
    ...over,
  };
}

async function rejectsWith<E extends Error>(p: Promise<unknown>, cls: new (...a: never[]) => E): Promise<E> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    return err;
  }
  assert.fail(`expected ${cls.name}, got success`);
}

before(async () => {
  mkdirSync(join(home, '.ssh'), { recursive: true });
  clientKey = sshKeygen(tmp.dir, 'client', 'ed25519');
  bastion = await startTestServer({ dir: join(tmp.dir, 'b'), clientKey, hostKey: sshKeygen(tmp.dir, 'bastion_host', 'ed25519'), allowForward: true });
  target = await startTestServer({ dir: join(tmp.dir, 't'), clientKey, hostKey: sshKeygen(tmp.dir, 'target_host', 'ed25519') });
  target2 = await startTestServer({ dir: join(tmp.dir, 't2'), clientKey, hostKey: sshKeygen(tmp.dir, 'target2_host', 'ecdsa') });
  closed = await startTestServer({ dir: join(tmp.dir, 'c'), clientKey, hostKey: sshKeygen(tmp.dir, 'closed_host', 'ed25519') });
  knownHosts = join(tmp.dir, 'known_hosts');
  writeFileSync(knownHosts, [bastion, target, target2, closed].map(line).join('\n') + '\n');
});
after(async () => {
  await Promise.all([bastion, target, target2, closed].map((s) => s.close()));
  tmp.cleanup();
});

describe('jump hosts (ProxyJump) over ssh2 forwardOut', () => {
  it('runs a command on the master through the bastion; the bastion opened the TCP connection', async () => {
    const before = bastion.forwards.length;
    const s = await connect(options());
    try {
      const r = await s.run('echo through; printf %s "$SSH_CONNECTION" >/dev/null');
      assert.equal(r.code, 0);
      assert.equal(r.stdout, 'through\n');
      assert.match(s.target, /^kha@127\.0\.0\.1:\d+ via ops@127\.0\.0\.1:\d+$/);
    } finally {
      await s.close();
    }
    assert.deepEqual(bastion.forwards.slice(before), [{ destIP: '127.0.0.1', destPort: target.port, allowed: true }]);
    assert.ok(bastion.auths.some((a) => a.user === 'ops' && a.method === 'publickey'));
    assert.ok(target.auths.some((a) => a.user === 'kha'));
  });

  it("a bastion whose host key changed is refused before any forward, and the error names the jump host; the master is never reached", async () => {
    const other = sshKeygen(tmp.dir, `forged${Date.now()}`, 'ed25519');
    const forged = join(tmp.dir, 'kh-forged-bastion');
    writeFileSync(forged, `[127.0.0.1]:${bastion.port} ${other.pub}\n${line(target)}\n`);
    const forwards = bastion.forwards.length;
    const targetAuths = target.auths.length;
    const err = await rejectsWith(connect(options({ knownHostsFile: forged, jumps: [hop({ knownHostsFile: forged })] })), HostKeyError);
    assert.equal(err.kind, 'changed');
    assert.equal(err.host, 'master1');
    assert.match(err.endpoint, new RegExp(`^127\\.0\\.0\\.1:${bastion.port} \\(jump host for master1\\)$`));
    assert.equal(err.fingerprint, bastion.hostKey.fingerprint);
    assert.deepEqual(err.knownFingerprints, [other.fingerprint]);
    assert.match(err.hint ?? '', new RegExp(`${forged.replace(/[/.]/g, '\\$&')}:1`));
    assert.equal(bastion.forwards.length, forwards, 'no forward was asked of an unverified bastion');
    assert.equal(target.auths.length, targetAuths);
  });

  it("the master's own key is verified too: unknown behind the bastion is refused, naming the master", async () => {
    const onlyBastion = join(tmp.dir, 'kh-only-bastion');
    writeFileSync(onlyBastion, `${line(bastion)}\n`);
    const err = await rejectsWith(connect(options({ knownHostsFile: onlyBastion, jumps: [hop({ knownHostsFile: onlyBastion })] })), HostKeyError);
    assert.equal(err.kind, 'unknown');
    assert.equal(err.endpoint, `127.0.0.1:${target.port}`);
    assert.equal(err.fingerprint, target.hostKey.fingerprint);
  });

  it('a bastion that refuses TCP forwarding: the error names it and says AllowTcpForwarding', async () => {
    const err = await rejectsWith(connect(options({ jumps: [hop({ port: closed.port })] })), ConnectError);
    assert.match(err.message, new RegExp(`cannot connect to kha@127\\.0\\.0\\.1:${target.port} through jump host ops@127\\.0\\.0\\.1:${closed.port}`));
    assert.match(err.hint ?? '', /AllowTcpForwarding/);
  });

  it('authentication refused by the bastion names the jump host', async () => {
    const stranger = sshKeygen(tmp.dir, 'stranger', 'ed25519');
    const err = await rejectsWith(connect(options({ jumps: [hop({ privateKeyFile: stranger.file })] })), ConnectError);
    assert.match(err.message, new RegExp(`authentication failed for jump host ops@127\\.0\\.0\\.1:${bastion.port}`));
  });

  it('two hops: bastion → bastion → master, each hop verified', async () => {
    const before = bastion.connections;
    const s = await connect(options({ jumps: [hop(), hop({ user: 'ops2' })] }));
    try {
      assert.equal((await s.run('echo two')).stdout, 'two\n');
    } finally {
      await s.close();
    }
    assert.equal(bastion.connections - before, 2, 'the second hop is a new SSH connection, made through the first');
    assert.ok(bastion.auths.some((a) => a.user === 'ops2'));
  });

  it('masters behind one bastion share one bastion connection; it ends with the last session', async () => {
    const pool = new JumpPool();
    const before = bastion.connections;
    const [a, b] = await Promise.all([connect(options({ jumpPool: pool })), connect(options({ host: 'master2', port: target2.port, jumpPool: pool }))]);
    assert.equal(bastion.connections - before, 1);
    assert.equal((await a.run('echo a')).stdout, 'a\n');
    assert.equal((await b.run('echo b')).stdout, 'b\n');
    await a.close();
    assert.equal((await b.run('echo still')).stdout, 'still\n', 'closing one master keeps the shared bastion connection');
    await b.close();
    const c = await connect(options({ jumpPool: pool }));
    assert.equal(bastion.connections - before, 2, 'a new run of connects opens the bastion again');
    await c.close();
  });

  it('a shared bastion failure is reported for every master waiting on it, each under its own name', async () => {
    const pool = new JumpPool();
    const empty = join(tmp.dir, 'kh-empty');
    writeFileSync(empty, '');
    const jumps = [hop({ knownHostsFile: empty })];
    const results = await Promise.allSettled([connect(options({ jumpPool: pool, jumps })), connect(options({ host: 'master2', jumpPool: pool, jumps }))]);
    const errs = results.map((r) => (r.status === 'rejected' ? (r.reason as HostKeyError) : assert.fail('connected through an unknown bastion')));
    assert.deepEqual(errs.map((e) => [e.constructor.name, e.host, e.kind]), [
      ['HostKeyError', 'master1', 'unknown'],
      ['HostKeyError', 'master2', 'unknown'],
    ]);
    assert.match(errs[1]!.endpoint, /jump host for master2/);
  });
});

describe('the connector reads ssh_config (alias, HostName, Port, User, IdentityFile, ProxyJump)', () => {
  const spec = (over: Partial<HostSpec>): HostSpec => ({ name: 'm1', address: 'm1', port: 22, user: 'root', become: false, priority: 150, line: 1, ...over });

  it('reaches a master known only by its ssh_config alias, through an aliased bastion, with keys and known_hosts from the config', async () => {
    const cfg = join(tmp.dir, 'ssh_config');
    writeFileSync(
      cfg,
      [
        'Host bastion',
        '  HostName 127.0.0.1',
        `  Port ${bastion.port}`,
        '  User ops',
        `  IdentityFile ${clientKey.file}`,
        'Host m1 m2',
        '  HostName 127.0.0.1',
        '  User kha',
        '  ProxyJump bastion',
        'Host m1',
        `  Port ${target.port}`,
        'Host m2',
        `  Port ${target2.port}`,
        'Host *',
        `  UserKnownHostsFile ${knownHosts}`,
        `  IdentityFile ${clientKey.file}`,
        '  StrictHostKeyChecking no',
        '',
      ].join('\n'),
    );
    const hosts = [spec({}), spec({ name: 'm2', address: 'm2' })];
    const args = { acceptNewHostKeys: false, sshConfig: cfg };
    const { routes, warnings } = resolveRoutes(args, hosts, { home, globalKnownHosts: [] });
    assert.equal(routes.get('m1')!.jumps.length, 1);
    assert.match(warnings.join('\n'), /StrictHostKeyChecking no is ignored/);
    const before = bastion.connections;
    const connectTo = connector(args, { routes }, () => undefined, { home });
    const [a, b] = await Promise.all(hosts.map(connectTo));
    try {
      assert.equal((await a!.run('echo m1')).stdout, 'm1\n');
      assert.equal((await b!.run('echo m2')).stdout, 'm2\n');
      assert.equal(bastion.connections - before, 1, 'one bastion connection for both masters');
    } finally {
      await Promise.all([a!.close(), b!.close()]);
    }
  });

  it('an unsupported ProxyCommand in ansible_ssh_common_args is exit 2 before any connection', async () => {
    const before = bastion.connections + target.connections;
    const err = await rejectsWith(
      readCredentials({ askBecomePass: false, acceptNewHostKeys: false, sshConfig: 'none', knownHosts }, [
        spec({ address: '127.0.0.1', port: target.port, user: 'kha', sshCommonArgs: `-o ProxyCommand="nc -X connect -x proxy:3128 %h %p"` }),
      ]),
      UsageError,
    );
    assert.equal(err.exitCode, 2);
    assert.match(err.message, /m1: ansible_ssh_common_args: ProxyCommand "nc -X connect -x proxy:3128 %h %p" is not supported/);
    assert.match(err.message, /no host was contacted/);
    assert.equal(bastion.connections + target.connections, before);
  });

  it("kubespray's -o ProxyCommand=\"ssh -W %h:%p -q user@bastion\" in ansible_ssh_common_args is a jump", async () => {
    const h = spec({ address: '127.0.0.1', port: target.port, user: 'kha', privateKeyFile: clientKey.file, sshCommonArgs: `-o ProxyCommand="ssh -W %h:%p -q -p ${bastion.port} ops@127.0.0.1" -o StrictHostKeyChecking=no` });
    const args = { acceptNewHostKeys: false, sshConfig: 'none', knownHosts };
    const { routes, warnings } = resolveRoutes(args, [h], { home, globalKnownHosts: [] });
    assert.deepEqual(routes.get('m1')!.jumps.map((j) => [j.user, j.address, j.port, j.privateKeyFile]), [['ops', '127.0.0.1', bastion.port, clientKey.file]]);
    assert.match(warnings.join('\n'), /StrictHostKeyChecking=no is ignored/);
    const before = bastion.forwards.length;
    const s = await connector(args, { routes }, () => undefined, { home })(h);
    try {
      assert.equal((await s.run('echo ok')).stdout, 'ok\n');
    } finally {
      await (s as { close(): Promise<void> }).close();
    }
    assert.equal(bastion.forwards.length, before + 1);
  });
});
