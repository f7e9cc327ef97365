// In-process SSH server on 127.0.0.1 for session tests: publickey auth for one test key, every exec
// request run by a local `sh -c <command>` in a session of its own (as sshd's setsid() gives), so
// the client's own wrapping is really executed, and a fake `sudo` first in PATH. Records what it saw
// (auth attempts, exec commands, concurrent channels).
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import ssh2, { type Connection, type ParsedKey } from 'ssh2';
import { sshKeygen, type TestKey } from './keygen.js';

// Fake sudo: `-n` fails unless NOPASSWD; `-S -p PROMPT` prints PROMPT on stderr and reads one line
// per try (two tries), like sudo without a tty. `read` takes one byte at a time from a pipe, so the
// rest of stdin is left for the command.
const FAKE_SUDO = `#!/bin/sh
mode=; prompt='Password:'
while [ $# -gt 0 ]; do
  case "$1" in
    -n) mode=n; shift ;;
    -S) mode=S; shift ;;
    -p) prompt=$2; shift 2 ;;
    --) shift; break ;;
    *) break ;;
  esac
done
if [ "$FAKE_SUDO_NOPASSWD" = 1 ]; then exec "$@"; fi
if [ "$mode" = n ]; then echo 'sudo: a password is required' >&2; exit 1; fi
for try in 1 2; do
  printf '%s' "$prompt" >&2
  IFS= read -r pw || { echo 'sudo: no password was provided' >&2; exit 1; }
  if [ "$pw" = "$FAKE_SUDO_PASSWORD" ]; then exec "$@"; fi
  echo 'Sorry, try again.' >&2
done
echo 'sudo: 2 incorrect password attempts' >&2
exit 1
`;

export interface TestServerOptions {
  dir: string;
  clientKey: TestKey;
  /** Defaults to a fresh ed25519 key. */
  hostKey?: TestKey;
  /** Refuse channels beyond this many at once, like sshd's MaxSessions. */
  maxSessions?: number;
  /** direct-tcpip (a jump host: ssh -J, ssh2's forwardOut) to loopback ports; refused otherwise, as AllowTcpForwarding no does. */
  allowForward?: boolean;
}

export interface TestServer {
  port: number;
  hostKey: TestKey;
  auths: { user: string; method: string }[];
  execs: string[];
  maxConcurrent: number;
  /** SSH connections accepted so far. */
  connections: number;
  /** direct-tcpip requests (allowForward servers): where to, and whether they were allowed (loopback only). */
  forwards: { destIP: string; destPort: number; allowed: boolean }[];
  /** Environment of the spawned shells (fake sudo settings). */
  env: Record<string, string>;
  close(): Promise<void>;
}

function killTree(child: ReturnType<typeof spawn>): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

export async function startTestServer(opts: TestServerOptions): Promise<TestServer> {
  const hostKey = opts.hostKey ?? sshKeygen(opts.dir, 'host_ed25519', 'ed25519');
  const clientPub = ssh2.utils.parseKey(readFileSync(`${opts.clientKey.file}.pub`)) as ParsedKey;
  const binDir = join(opts.dir, 'bin');
  mkdirSync(binDir, { recursive: true });
  writeFileSync(join(binDir, 'sudo'), FAKE_SUDO);
  chmodSync(join(binDir, 'sudo'), 0o755);

  const connections = new Set<Connection>();
  let open = 0;
  const state: TestServer = {
    port: 0,
    hostKey,
    auths: [],
    execs: [],
    maxConcurrent: 0,
    connections: 0,
    forwards: [],
    env: {},
    close: async () => {
      for (const c of connections) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };

  const server = new ssh2.Server({ hostKeys: [readFileSync(hostKey.file)] }, (client) => {
    connections.add(client);
    state.connections++;
    client.on('error', () => undefined);
    // Without a listener ssh2 answers "administratively prohibited", as sshd with AllowTcpForwarding no.
    if (opts.allowForward) client.on('tcpip', (accept, reject, info) => {
      const allowed = info.destIP === '127.0.0.1';
      state.forwards.push({ destIP: info.destIP, destPort: info.destPort, allowed });
      if (!allowed) return reject();
      const upstream = net.connect({ host: info.destIP, port: info.destPort });
      upstream.once('error', () => reject());
      upstream.once('connect', () => {
        upstream.removeAllListeners('error');
        const ch = accept();
        ch.on('error', () => undefined);
        upstream.on('error', () => ch.destroy());
        ch.pipe(upstream).pipe(ch);
        ch.on('close', () => upstream.destroy());
        upstream.on('close', () => ch.destroy());
      });
    });
    const children = new Set<ReturnType<typeof spawn>>();
    client.on('close', () => {
      connections.delete(client);
      for (const c of children) killTree(c); // like sshd: a dead connection ends its commands
    });
    client.on('authentication', (ctx) => {
      state.auths.push({ user: ctx.username, method: ctx.method });
      if (ctx.method !== 'publickey' || !ctx.key || !ctx.key.data.equals(clientPub.getPublicSSH())) return ctx.reject(['publickey']);
      if (ctx.signature && ctx.blob && clientPub.verify(ctx.blob, ctx.signature, ctx.hashAlgo) !== true) return ctx.reject(['publickey']);
      ctx.accept();
    });
    client.on('session', (acceptSession) => {
      const session = acceptSession();
      session.on('exec', (accept, reject, info) => {
        if (open >= (opts.maxSessions ?? 10)) return reject();
        open++;
        state.maxConcurrent = Math.max(state.maxConcurrent, open);
        state.execs.push(info.command);
        const stream = accept();
        // `exec`: like bash as the login shell, which execs a lone command (so signals reach us as signals).
        const child = spawn('sh', ['-c', `exec ${info.command}`], {
          env: { ...process.env, PATH: `${binDir}:${process.env.PATH ?? '/usr/bin:/bin'}`, ...state.env },
          detached: true, // own process group: killTree ends grandchildren (sleep) too
        });
        children.add(child);
        child.stdin.on('error', () => undefined);
        stream.on('error', () => undefined);
        stream.pipe(child.stdin);
        child.stdout.pipe(stream, { end: false });
        child.stderr.pipe(stream.stderr, { end: false });
        // Like sshd: a closed channel only closes the command's pipes and signals nothing, so a
        // command ended by the client's deadline is gone only if the client really killed it.
        stream.on('close', () => [child.stdin, child.stdout, child.stderr].forEach((p) => p.destroy()));
        child.on('close', (code, signal) => {
          children.delete(child);
          open--;
          if (signal) stream.exit(signal.replace(/^SIG/, ''), false, '');
          else stream.exit(code ?? 0);
          stream.end();
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.port = server.address().port;
  return state;
}

/**
 * A TCP relay in front of the server: freeze() stops all traffic silently and, like a cut cable,
 * never tells the server when the client gives up (the server keeps the session); cut() resets.
 */
export async function startRelay(targetPort: number): Promise<{ port: number; freeze(): void; cut(): void; close(): Promise<void> }> {
  const pairs: [net.Socket, net.Socket][] = [];
  let frozen = false;
  const relay = net.createServer((a) => {
    const b = net.connect({ host: '127.0.0.1', port: targetPort });
    a.on('error', () => undefined);
    b.on('error', () => undefined);
    a.on('data', (d) => frozen || b.write(d));
    b.on('data', (d) => frozen || a.write(d));
    a.on('close', () => frozen || b.destroy());
    b.on('close', () => a.destroy());
    pairs.push([a, b]);
  });
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
  return {
    port: (relay.address() as net.AddressInfo).port,
    freeze: () => (frozen = true),
    cut: () => pairs.forEach(([a, b]) => (a.resetAndDestroy(), b.destroy())),
    close: async () => {
      pairs.forEach(([a, b]) => (a.destroy(), b.destroy()));
      await new Promise<void>((resolve) => relay.close(() => resolve()));
    },
  };
}
