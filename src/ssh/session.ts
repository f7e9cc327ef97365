// One SSH connection per host, reused for every command, made and used through node-ssh 13.2.1 (on
// ssh2 1.17): NodeSSH.connect() for every hop (mandatory host-key verifier, our own TCP_NODELAY
// socket or a forwardOut channel as `sock`, keepalive), NodeSSH.execCommand() for every command with
// a PassThrough as `stdin` (the channel stays open: a sudo password is written only after sudo's
// prompt, the lock holder keeps stdin open and writes its heartbeat), onChannel for the channel
// (exit status, close(), the kill of a command past its deadline) and onStdout/onStderr for the raw
// Buffers (its returned strings decode each chunk alone and can split a UTF-8 character: unused),
// NodeSSH.forwardOut() for jump hosts. What node-ssh leaves to the caller is done here: it rejects
// connect() on ssh2's first `error` event although ssh2 goes on after a failing ssh-agent (so the
// agent is wrapped to turn a failure into "no keys", and the raw ssh2 Client, `ssh.connection`,
// decides the outcome), it leaves no `error` listener after connect and does not dispose a connection
// whose connect failed.
import net from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { NodeSSH } from 'node-ssh';
import ssh2, { type Client, type ClientChannel, type OpenSSHAgent, type ParsedKey, type Ssh2Error } from 'ssh2';
import { ConnectError, DeadlineError, HostKeyError, HostStepError, InterruptedError } from '../errors.js';
import type { HeldCommand, HoldOptions, Remote, RemoteResult, RunOptions } from '../types.js';
import { maskSecrets } from '../report/redact.js';
import { SudoPromptWatcher, findPgid, findReadyLine, killScript, stripPgidLine, withSudoNote, wrapCommand } from './command.js';
import { networkError, sshError, type ConnectContext } from './connect-errors.js';
import { createHostVerifier, endpointOf } from './host-keys.js';
import { planAuth } from './keys.js';
import { Semaphore } from './semaphore.js';

export { isSudoPasswordRequired, isSudoPasswordWrong } from './command.js';

export interface ConnectOptions {
  /** Inventory name, for errors and events. */
  host: string;
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
  passphrase?: string;
  /** SSH_AUTH_SOCK */
  agentSocket?: string;
  become: boolean;
  becomePassword?: string;
  knownHostsFile: string;
  acceptNewHostKeys: boolean;
  /** TCP connect timeout (default 10000). */
  connectTimeoutMs?: number;
  /** SSH handshake + authentication timeout once TCP is up (default 20000). */
  readyTimeoutMs?: number;
  /** A silent network cut is detected after about interval × (countMax + 1) (defaults 2000, 3). */
  keepaliveIntervalMs?: number;
  keepaliveCountMax?: number;
  /** How long release() of a held command waits for it to end before closing its channel (default 5000). */
  releaseTimeoutMs?: number;
  /** Concurrent channels on the connection (default 8; sshd's MaxSessions is 10). */
  maxChannels?: number;
  /** Verbose output: the whole script of each command (the kill of a command past its deadline too), secrets masked by meaning. */
  onCommand?: (command: string) => void;
  /** Home directory for the default keys (tests). */
  homeDir?: string;
  /** IdentitiesOnly (ssh_config): with no key file, offer the default key files but not ssh-agent's keys. */
  identitiesOnly?: boolean;
  /** Read after knownHostsFile, never written: more UserKnownHostsFile entries, /etc/ssh/ssh_known_hosts. */
  extraKnownHostsFiles?: readonly string[];
  /** Jump hosts in front of the master, the first connected to first (ProxyJump). */
  jumps?: readonly JumpHop[];
  /** Shares jump host connections between the masters of a run; without it each connect has its own. */
  jumpPool?: JumpPool;
}

interface ExecIo {
  stdin?: string;
  /** Leave stdin open after writing (hold). */
  keepStdinOpen?: boolean;
  /**
   * The channel once open, the PassThrough that is its stdin (write and end stdin there: node-ssh pipes
   * it into the channel), and a function that lifts the deadline and the abort signal (hold, at its ready marker).
   */
  onChannel?: (open: { channel: ClientChannel; stdin: PassThrough }, disarm: () => void) => void;
  onStdout?: (chunk: Buffer) => void;
  /** Past it the command's process group is ended on the host and the result is a DeadlineError. */
  timeoutMs?: number;
  /** Aborted: the same, and the result is an InterruptedError. */
  signal?: AbortSignal;
}

/** An aborted command returns within this, even when ending it on the host takes longer. */
const ABORT_RETURN_MS = 1500;
/** Bound on the kill channel (TERM, up to 1 s, KILL) and its round trips. */
const KILL_BOUND_MS = 3000;
/** Wait for the process group line once the channel is open: printing it is the script's first act. */
const PGID_WAIT_MS = 500;

// unref: only ever raced against work that keeps the connection (and the process) alive anyway.
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());

/** stdout then stderr, as one text for an error's `seen`. */
function joinOutput(stdout: string, stderr: string): string {
  return stdout !== '' && stderr !== '' && !stdout.endsWith('\n') ? `${stdout}\n${stderr}` : `${stdout}${stderr}`;
}

const LOST_HINT = 'the host stopped answering or sshd went away: check the host, then rerun (kha-deploy picks up where it stopped)';

function openSocket(ctx: ConnectContext, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    // noDelay: ssh2 never sets TCP_NODELAY; without it each command waits on Nagle (14–90 ms).
    const sock = net.connect({ host: ctx.address, port: ctx.port, noDelay: true });
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      sock.destroy();
      reject(networkError(ctx, err, timeoutMs));
    };
    const timer = setTimeout(() => onError(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })), timeoutMs);
    sock.once('error', onError);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.removeListener('error', onError);
      resolve(sock);
    });
  });
}

/** One SSH login on the way to a master (the master itself, or a jump host). */
interface Hop extends JumpHop {
  /** Inventory name of the master this is for (errors, events). */
  host: string;
  /** `user@address:port`, or `jump host user@address:port` for a jump host. */
  target: string;
  /** Set for a jump host: names it in host key errors. */
  label?: string;
}

type Dial = (ctx: ConnectContext) => Promise<Duplex>;

/** The key as `ConnectError`s name it: `user@address:port`. */
function targetOf(h: { user: string; address: string; port: number }): string {
  return `${h.user}@${endpointOf(h.address, h.port)}`;
}

/** SSH handshake with one hop over the stream `dial` gives: host key verified (mandatory), authenticated. */
async function handshake(hop: Hop, common: ConnectOptions, dial: Dial): Promise<{ ssh: NodeSSH; client: Client; sock: Duplex }> {
  const auth = await planAuth({
    host: hop.host,
    ...(hop.privateKeyFile !== undefined ? { privateKeyFile: hop.privateKeyFile } : {}),
    ...(common.passphrase !== undefined ? { passphrase: common.passphrase } : {}),
    // IdentitiesOnly: the agent only stands in for an encrypted key file, it offers none of its own.
    ...(common.agentSocket !== undefined && !(hop.identitiesOnly && hop.privateKeyFile === undefined) ? { agentSocket: common.agentSocket } : {}),
    ...(common.homeDir !== undefined ? { homeDir: common.homeDir } : {}),
  });
  const verifier = await createHostVerifier(hop).catch((err: Error) => {
    throw new ConnectError(hop.host, 'connect', `cannot read known_hosts file for ${hop.target}: ${err.message}`, {
      hint: 'check --known-hosts (and UserKnownHostsFile/GlobalKnownHostsFile in ssh_config)',
      cause: err,
    });
  });
  const ctx: ConnectContext = {
    host: hop.host,
    user: hop.user,
    address: hop.address,
    port: hop.port,
    target: hop.target,
    tried: auth.tried,
    knownHostsFile: hop.knownHostsFile,
    ...(verifier.algorithms ? { algorithms: verifier.algorithms } : {}),
  };
  const readyTimeout = common.readyTimeoutMs ?? 20_000;
  const sock = await dial(ctx);
  const ssh = new NodeSSH();
  return new Promise((resolve, reject) => {
    let settled = false;
    let client: Client | null = null;
    const verifierFailure = () => {
      const f = verifier.failure;
      if (f === undefined || f instanceof HostStepError) return f; // HostKeyError
      return new ConnectError(hop.host, 'connect', `cannot record the host key of ${hop.target} in ${hop.knownHostsFile}: ${f.message}`, {
        hint: 'check that file and its directory are writable (--known-hosts)',
        cause: f,
      });
    };
    const detach = () => {
      client?.removeListener('error', onError);
      client?.removeListener('close', onClose);
      client?.removeListener('ready', onReady);
    };
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      detach();
      client?.on('error', () => undefined); // late events of a connection given up
      client?.destroy(); // node-ssh does not dispose a connection whose connect() rejected
      ssh.dispose();
      sock.destroy();
      reject(verifierFailure() ?? err); // ssh2 only says "Host denied": the verifier kept the reason
    };
    const onError = (err: Ssh2Error) => {
      if (err.level === 'agent') return void ctx.tried.push(`(ssh-agent failed: ${err.message})`); // ssh2 goes on with the next key
      fail(sshError(ctx, err, readyTimeout));
    };
    const onClose = () => fail(new ConnectError(hop.host, 'connect', `${hop.target} closed the connection during the SSH handshake`, { hint: 'is that port an SSH server (ansible_port)?' }));
    const onReady = () => {
      if (settled) return;
      const c = client ?? ssh.connection;
      if (!c) return fail(new ConnectError(hop.host, 'connect', `the connection to ${hop.target} ended right after the SSH handshake`, { hint: LOST_HINT }));
      settled = true;
      detach();
      // node-ssh adds an 'error' listener per command waiting for its channel: room for maxChannels of them and the kills.
      c.setMaxListeners(Math.max(20, (common.maxChannels ?? 8) * 2 + 4));
      resolve({ ssh, client: c, sock }); // the caller attaches its own 'error' listener right away
    };
    const agent = auth.agent !== undefined ? quietAgent(auth.agent, (err) => ctx.tried.push(`(ssh-agent failed: ${err.message})`)) : undefined;
    const connecting = ssh.connect({
      sock,
      username: hop.user,
      // node-ssh accepts privateKey only as a string (an OpenSSH or PEM key is ASCII).
      ...(auth.privateKey ? { privateKey: auth.privateKey.toString('utf8') } : {}),
      ...(auth.passphrase !== undefined ? { passphrase: auth.passphrase } : {}),
      ...(agent ? { agent } : {}),
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => verifier.verify(key, verify),
      ...(verifier.algorithms ? { algorithms: { serverHostKey: verifier.algorithms } } : {}),
      readyTimeout,
      keepaliveInterval: common.keepaliveIntervalMs ?? 2000,
      keepaliveCountMax: common.keepaliveCountMax ?? 3,
    });
    // node-ssh 13.2.1 creates the ssh2 Client and calls its connect() before its first await (no
    // privateKeyPath is given): `ssh.connection` is already there. Its own promise rejects on the first
    // 'error' event, fatal or not (ssh2 emits a non-fatal one at level 'agent' when the agent fails
    // while signing, and goes on with the next method), so the raw Client's events decide the outcome.
    client = ssh.connection;
    if (client) {
      client.on('error', onError);
      client.on('close', onClose);
      client.once('ready', onReady);
    }
    connecting.then(
      () => onReady(),
      (err: Error) => {
        if (client) return; // a rejection on the raw Client's 'error' or 'close', which the listeners above settle
        fail(err instanceof Error ? sshError(ctx, err, readyTimeout) : new Error(String(err)));
      },
    );
  });
}

/**
 * ssh-agent for ssh2, quiet about a dead socket: ssh2 emits an 'error' (level 'agent') when the agent
 * cannot list its keys and then tries the next method, but node-ssh's connect() rejects on that first
 * 'error'. A failure to list is reported to `onFailure` and becomes "no keys", which ssh2 skips.
 */
function quietAgent(socketPath: string, onFailure: (err: Error) => void): OpenSSHAgent {
  return new (class extends ssh2.OpenSSHAgent {
    override getIdentities(cb: (err: Error | null, keys?: ParsedKey[]) => void): void {
      super.getIdentities((err, keys) => {
        if (err) {
          onFailure(err);
          return cb(null, []);
        }
        cb(null, keys);
      });
    }
  })(socketPath);
}

/** RFC 4254 channel open failure reasons. */
const OPEN_FAILURES: Record<number, string> = { 1: 'administratively prohibited', 2: 'connect failed', 3: 'unknown channel type', 4: 'resource shortage' };

/** A TCP connection to ctx's address opened by the jump host `via` (direct-tcpip, node-ssh's forwardOut), bounded by `timeoutMs`. */
function forwardThrough(via: NodeSSH, viaTarget: string, ctx: ConnectContext, timeoutMs: number): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const where = endpointOf(ctx.address, ctx.port);
    const what = `cannot connect to ${ctx.user}@${where} through jump host ${viaTarget}`;
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(
        new ConnectError(ctx.host, 'connect', `${what}: no answer within ${Math.round(timeoutMs / 100) / 10} s`, {
          hint: `can the jump host reach ${where}? (the address and port are used as the jump host sees them)`,
        }),
      );
    }, timeoutMs);
    let forwarding: Promise<ClientChannel>;
    try {
      forwarding = via.forwardOut('127.0.0.1', 0, ctx.address, ctx.port);
    } catch (err) {
      // node-ssh throws "Not connected to server" once the jump host's connection ended; ssh2 "Not connected"
      clearTimeout(timer);
      done = true;
      return reject(new ConnectError(ctx.host, 'connect', `${what}: the connection to the jump host is gone (${(err as Error).message})`, { cause: err }));
    }
    forwarding.then(
      (stream) => {
        clearTimeout(timer);
        if (done) return void stream.close();
        done = true;
        resolve(stream);
      },
      (err: Error & { reason?: number }) => {
        clearTimeout(timer);
        if (done) return;
        done = true;
        if (/not connected/i.test(err.message) && typeof err.reason !== 'number')
          return reject(new ConnectError(ctx.host, 'connect', `${what}: the connection to the jump host is gone (${err.message})`, { cause: err }));
        const reason = typeof err.reason === 'number' ? OPEN_FAILURES[err.reason] : undefined;
        const text = err.message.replace(/^\(SSH\) /, '').replace(/:\s*$/, '');
        reject(
          new ConnectError(ctx.host, 'connect', `${what}: ${text}${reason && !text.includes(reason) ? ` (${reason})` : ''}`, {
            hint:
              err.reason === 1
                ? `the jump host's sshd refuses TCP forwarding: set AllowTcpForwarding yes (at least for ${viaTarget.split('@')[0]}) in its sshd_config`
                : `is sshd running on ${where}, and can the jump host reach it (address and port as the jump host sees them)?`,
            cause: err,
          }),
        );
      },
    );
  });
}

/** A jump host on the way to a master: where it is and how to verify and log in to it. */
export interface JumpHop {
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
  identitiesOnly?: boolean;
  knownHostsFile: string;
  extraKnownHostsFiles?: readonly string[];
  acceptNewHostKeys: boolean;
}

interface Connected {
  ssh: NodeSSH;
  /** ssh.connection, kept: node-ssh sets that to null when the connection ends. */
  client: Client;
}

interface PoolEntry {
  ready: Promise<Connected>;
  users: number;
  conn?: Connected;
}

/**
 * Jump host connections of one run, shared: masters behind the same chain of jump hosts use one SSH
 * connection to each hop. A hop's connection ends when the last session through it closes.
 */
export class JumpPool {
  private readonly entries = new Map<string, PoolEntry>();

  /** The connection to the last hop of `chain` (connected through the ones before it), counted as used once. */
  async acquire(chain: readonly JumpHop[], opts: ConnectOptions): Promise<{ ssh: NodeSSH; target: string; release: () => void }> {
    const keys = chain.map((h, i) => chain.slice(0, i + 1).map((x) => `${targetOf(x)}`).join(' > '));
    const held: PoolEntry[] = [];
    const release = () => {
      const taken = held.splice(0);
      for (let k = taken.length - 1; k >= 0; k--) this.drop(keys[k]!, taken[k]!); // the last hop first
    };
    try {
      let via: { ssh: NodeSSH; target: string } | undefined;
      for (let i = 0; i < chain.length; i++) {
        const hop = chain[i]!;
        const key = keys[i]!;
        let entry = this.entries.get(key);
        if (!entry) {
          const target = `jump host ${targetOf(hop)}`;
          const prev = via;
          const e: PoolEntry = { users: 0, ready: Promise.resolve(undefined as unknown as Connected) };
          e.ready = handshake(
            { ...hop, host: opts.host, target, label: `jump host for ${opts.host}` },
            opts,
            prev ? (ctx) => forwardThrough(prev.ssh, prev.target, ctx, opts.connectTimeoutMs ?? 10_000) : (ctx) => openSocket(ctx, opts.connectTimeoutMs ?? 10_000),
          ).then(({ ssh, client }) => {
            e.conn = { ssh, client };
            client.on('error', () => undefined); // the sessions through it report the loss
            client.on('close', () => this.entries.get(key) === e && this.entries.delete(key));
            return e.conn;
          });
          e.ready.catch(() => this.entries.get(key) === e && this.entries.delete(key));
          this.entries.set(key, e);
          entry = e;
        }
        entry.users++;
        held.push(entry);
        via = { ssh: (await entry.ready.catch((err: Error) => Promise.reject(forHost(err, opts.host)))).ssh, target: `${targetOf(hop)}` };
      }
      return { ssh: via!.ssh, target: via!.target, release };
    } catch (err) {
      release();
      throw err;
    }
  }

  private drop(key: string, e: PoolEntry): void {
    if (--e.users > 0) return;
    if (this.entries.get(key) === e) this.entries.delete(key);
    e.conn?.client.end();
  }

  /** End every jump host connection (the end of a run). */
  close(): void {
    for (const e of this.entries.values()) e.conn?.client.end();
    this.entries.clear();
  }
}

/** A shared jump host's failure, told for the master that waited on it. */
function forHost(err: Error, host: string): Error {
  if (!(err instanceof HostStepError) || err.host === host) return err;
  if (err instanceof HostKeyError) return new HostKeyError(host, err.kind, err.endpoint.replace(/ \(jump host for [^)]*\)$/, ` (jump host for ${host})`), err.fingerprint, err.knownFingerprints, err.hint !== undefined ? { hint: err.hint } : {});
  return new ConnectError(host, err.step, err.message, { ...(err.hint !== undefined ? { hint: err.hint } : {}), cause: err.cause ?? err });
}

/** Connect (through the jump hosts, if any), verify every hop's host key against known_hosts (mandatory), authenticate. */
export async function connect(opts: ConnectOptions): Promise<SshSession> {
  const hops = opts.jumps ?? [];
  let target = targetOf(opts);
  const hop: Hop = { ...opts, target };
  if (hops.length === 0) {
    const { ssh, client } = await handshake(hop, opts, (ctx) => openSocket(ctx, opts.connectTimeoutMs ?? 10_000));
    return new SshSession(ssh, client, opts, target);
  }
  const ownPool = opts.jumpPool === undefined;
  const pool = opts.jumpPool ?? new JumpPool();
  const via = await pool.acquire(hops, opts);
  target = `${target} via ${via.target}`;
  try {
    const { ssh, client } = await handshake({ ...hop, target }, opts, (ctx) => forwardThrough(via.ssh, via.target, ctx, opts.connectTimeoutMs ?? 10_000));
    const session = new SshSession(ssh, client, opts, target);
    client.once('close', () => {
      via.release();
      if (ownPool) pool.close();
    });
    return session;
  } catch (err) {
    via.release();
    if (ownPool) pool.close();
    throw err;
  }
}

export class SshSession implements Remote {
  readonly host: string;
  private count = 0;
  private readonly channels: Semaphore;
  /** Rejecters of everything in flight, called when the connection goes away. */
  private readonly pending = new Set<(cause: Error | undefined) => void>();
  private lastError: Error | undefined;
  private ended = false;
  private closing = false;

  constructor(
    /** Runs every command (execCommand). */
    private readonly ssh: NodeSSH,
    /** ssh.connection, kept for its events and for close(): node-ssh nulls ssh.connection once it ends. */
    private readonly client: Client,
    private readonly opts: ConnectOptions,
    /** user@address:port */
    readonly target: string,
  ) {
    this.host = opts.host;
    this.channels = new Semaphore(opts.maxChannels ?? 8);
    client.on('error', (err: Error) => {
      this.lastError = err;
    });
    client.on('close', () => {
      this.ended = true;
      for (const fail of [...this.pending]) fail(this.lastError);
      this.pending.clear();
    });
  }

  get commandCount(): number {
    return this.count;
  }

  async run(script: string, opts: RunOptions = {}): Promise<RemoteResult> {
    const what = this.describe(script, opts.label);
    if (opts.signal?.aborted) throw this.interrupted(what, false);
    this.begin(script, what);
    const release = await this.acquire(what, opts.signal);
    try {
      return await this.execute(script, what, {
        ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
    } finally {
      release();
    }
  }

  async hold(script: string, readyMarker: string, opts: HoldOptions = {}): Promise<HeldCommand | RemoteResult> {
    const what = this.describe(script, undefined);
    if (opts.signal?.aborted) throw this.interrupted(what, false);
    this.begin(script, what);
    const releaseSlot = await this.acquire(what, opts.signal);
    const heartbeatMs = opts.heartbeatMs ?? 5000;
    return new Promise((resolve, reject) => {
      let channel: ClientChannel | undefined;
      let stdin: PassThrough | undefined;
      let disarm: (() => void) | undefined;
      let heartbeat: NodeJS.Timeout | undefined;
      let ready = false;
      const chunks: Buffer[] = [];
      const result = this.execute(script, what, {
        keepStdinOpen: true,
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
        onChannel: (open, stop) => {
          channel = open.channel;
          stdin = open.stdin;
          disarm = stop;
        },
        onStdout: (chunk) => {
          if (ready) return;
          chunks.push(chunk);
          const text = Buffer.concat(chunks).toString('utf8');
          const at = findReadyLine(text, readyMarker);
          if (at < 0 || !channel || !stdin) return;
          ready = true;
          disarm?.(); // the deadline and Ctrl-C cover the part before the marker; release() ends the rest
          const ch = channel;
          const input = stdin;
          if (heartbeatMs > 0) {
            // Proves the run is alive: the lock's holder gives the lock up when these stop (network cut).
            heartbeat = setInterval(() => ch.writable && !input.writableEnded && input.write('.'), heartbeatMs);
            heartbeat.unref();
          }
          let released: Promise<void> | undefined;
          resolve({
            output: text.slice(0, at),
            release: () => {
              clearInterval(heartbeat);
              return (released ??= this.releaseHeld(ch, input, result));
            },
          });
        },
      });
      result.then(
        (r) => {
          clearInterval(heartbeat);
          releaseSlot();
          if (!ready) resolve(r); // ended before the marker: the caller reads why from the result
        },
        (err: Error) => {
          clearInterval(heartbeat);
          releaseSlot();
          if (!ready) reject(err);
        },
      );
    });
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.ended) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.client.destroy();
        resolve();
      }, 2000);
      this.client.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      const detached = this.ssh.connection === null; // node-ssh forgets the connection at its 'end'
      this.ssh.dispose(); // ssh2's end()
      if (detached) this.client.end();
    });
  }

  /** How errors name a command: its label, else its first line (secrets masked). */
  private describe(script: string, label: string | undefined): string {
    return this.short(maskSecrets(label ?? script));
  }

  /** Count the command and show it whole (secrets masked); refuse on a dead connection. */
  private begin(script: string, what: string): void {
    if (this.ended || this.closing) throw this.lostError(what, this.lastError);
    this.count++;
    this.opts.onCommand?.(maskSecrets(script));
  }

  private short(text: string): string {
    const first = text.trim().split('\n')[0] ?? '';
    return first.length > 80 || text.trim().includes('\n') ? `${first.slice(0, 77)}...` : first;
  }

  private lostError(what: string, cause: Error | undefined): ConnectError {
    const why = this.closing ? 'was closed by kha-deploy' : `was lost${cause ? ` (${maskSecrets(cause.message)})` : ''}`;
    return new ConnectError(this.host, 'ssh', `connection to ${this.target} ${why} while running \`${what}\``, {
      ...(this.closing ? {} : { hint: LOST_HINT }),
      ...(cause ? { cause } : {}),
    });
  }

  private interrupted(what: string, sent: boolean): InterruptedError {
    return new InterruptedError(sent ? `interrupted: \`${what}\` was ended on ${this.host}` : `interrupted before \`${what}\` was sent to ${this.host}`);
  }

  /** A channel slot; Ctrl-C while waiting for one gives up (the slot, once free, goes to the next). */
  private async acquire(what: string, signal: AbortSignal | undefined): Promise<() => void> {
    const slot = this.channels.acquire();
    if (!signal) return slot;
    let onAbort = () => undefined as void;
    const aborted = new Promise<never>((_resolve, reject) => {
      onAbort = () => reject(this.interrupted(what, false));
    });
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await Promise.race([slot, aborted]);
    } catch (err) {
      void slot.then((release) => release());
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Run `command` through node-ssh's execCommand with `io.stdin` as its stdin (a PassThrough keeps the
   * channel open until it ends). `io.onChannel` gets the channel synchronously in ssh2's exec callback,
   * before any of its events; execCommand's returned strings are not used (see the top of the file).
   * Rejects when no channel opens: connection gone (`fail` of execute, through `lost`) or refused.
   */
  private openChannel(
    command: string,
    what: string,
    io: { stdin: PassThrough; onChannel: (channel: ClientChannel) => void; onStdout: (chunk: Buffer) => void; onStderr: (chunk: Buffer) => void },
    lost: (cause: Error | undefined) => void,
  ): Promise<void> {
    let opened = false;
    let running: Promise<unknown>;
    try {
      running = this.ssh.execCommand(command, {
        stdin: io.stdin,
        noTrim: true,
        onChannel: (channel) => {
          opened = true;
          io.onChannel(channel);
        },
        onStdout: io.onStdout,
        onStderr: io.onStderr,
      });
    } catch (err) {
      running = Promise.reject(err);
    }
    return running.then(
      () => undefined,
      (err: Error) => {
        if (opened) return; // node-ssh rejects only before the channel opens; the channel's 'close' settles
        // node-ssh throws "Not connected to server" once the connection ended, ssh2 "Not connected" when the socket is gone;
        // a connection 'error' while waiting for the channel rejects too (SshSession's own listener saw it first).
        if (this.ended || err === this.lastError || /not connected/i.test(err.message)) return lost(this.lastError ?? err);
        throw new ConnectError(this.host, 'ssh', `${this.target} refused a channel for \`${what}\`: ${err.message}`, { hint: LOST_HINT, cause: err });
      },
    );
  }

  /**
   * One exec channel: wrap, feed stdin (after sudo's prompt when a password is used), collect. Past
   * the deadline or on abort, the command's process group is ended on the host (endGroup), then the
   * channel is closed: closing it alone would leave the command running (sshd only closes its pipes).
   */
  private execute(script: string, what: string, io: ExecIo): Promise<RemoteResult> {
    const password = this.opts.becomePassword;
    const wrapped = wrapCommand(script, this.opts.become, this.opts.become && password !== undefined);
    const watcher = wrapped.prompt && wrapped.startMarker ? new SudoPromptWatcher(wrapped.prompt, wrapped.startMarker) : undefined;
    return new Promise<RemoteResult>((resolve, reject) => {
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      let head = ''; // stderr (latin1) until the process group line is complete
      let pgid: number | undefined;
      let ch: ClientChannel | undefined;
      let closed = false;
      let settled = false;
      let ending: 'deadline' | 'abort' | undefined;
      let killing = false;
      let deadline: NodeJS.Timeout | undefined;
      let bound: NodeJS.Timeout | undefined;
      const waiters = new Set<() => void>();
      const changed = () => [...waiters].forEach((w) => w());
      /** Resolves once `ok()` holds (checked at each change) or after `ms`. */
      const until = (ok: () => boolean, ms: number) =>
        new Promise<void>((done) => {
          if (ok()) return done();
          const check = () => ok() && finish();
          const finish = () => {
            clearTimeout(timer);
            waiters.delete(check);
            done();
          };
          const timer = setTimeout(finish, ms);
          waiters.add(check);
        });

      const stderrText = () => {
        if (watcher) return watcher.text();
        const text = stripPgidLine(Buffer.concat(stderr).toString('utf8'));
        return this.opts.become ? withSudoNote(text) : text;
      };
      const onAbort = () => end('abort');
      const disarm = () => {
        clearTimeout(deadline);
        io.signal?.removeEventListener('abort', onAbort);
      };
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        disarm();
        clearTimeout(bound);
        this.pending.delete(fail);
        outcome();
      };
      const endError = (reason: 'deadline' | 'abort') =>
        reason === 'deadline'
          ? new DeadlineError(this.host, 'ssh', io.timeoutMs ?? 0, maskSecrets(joinOutput(Buffer.concat(stdout).toString('utf8'), stderrText())), { what })
          : this.interrupted(what, true);
      const fail = (cause: Error | undefined) => settle(() => reject(ending ? endError(ending) : this.lostError(what, cause)));
      const giveUp = () => settle(() => reject(endError(ending!)));

      /** Once ending and the channel is open (it may open after the abort): end the group, close. */
      const killWhenOpen = () => {
        if (!ending || !ch || killing) return;
        killing = true;
        const c = ch;
        void (async () => {
          if (!closed) await until(() => pgid !== undefined || closed, PGID_WAIT_MS);
          if (pgid !== undefined && !closed) await this.endGroup(pgid, what);
          c.close();
        })()
          .catch(() => undefined)
          .finally(giveUp);
      };
      const end = (reason: 'deadline' | 'abort') => {
        if (settled || ending) return;
        ending = reason;
        disarm();
        // Ctrl-C returns within 2 s whatever the host does; a deadline waits for the kill (itself bounded).
        bound = setTimeout(giveUp, reason === 'abort' ? ABORT_RETURN_MS : PGID_WAIT_MS + KILL_BOUND_MS + 500);
        killWhenOpen();
      };

      this.pending.add(fail);
      if (io.timeoutMs !== undefined && io.timeoutMs > 0) deadline = setTimeout(() => end('deadline'), io.timeoutMs);
      if (io.signal?.aborted) end('abort');
      else io.signal?.addEventListener('abort', onAbort, { once: true });

      const stdin = new PassThrough();
      const feedInput = () => {
        if (ending) return;
        if (io.stdin) stdin.write(io.stdin);
        if (!io.keepStdinOpen) stdin.end();
      };
      let code: number | null = null;
      let signal: string | null = null;
      let exited = false;
      const onStdout = (chunk: Buffer) => {
        stdout.push(chunk);
        io.onStdout?.(chunk);
      };
      const onStderr = (chunk: Buffer) => {
        if (pgid === undefined && head.length < 65536) {
          head += chunk.toString('latin1'); // the marker is ASCII: byte-exact search
          pgid = findPgid(head);
          if (pgid !== undefined) changed();
        }
        if (!watcher) return void stderr.push(chunk);
        for (const event of watcher.push(chunk)) {
          if (event === 'password') stdin.write(`${password}\n`);
          else if (event === 'started') feedInput();
          else stdin.end(); // asked again: wrong password, never retry
        }
      };
      const onChannel = (c: ClientChannel) => {
        ch = c;
        c.on('error', () => undefined); // writes racing a closing channel; the outcome comes from 'close'
        c.on('exit', (code_: number | null, signal_?: string) => {
          exited = true;
          code = code_ ?? null;
          signal = signal_ ?? null;
        });
        // 'close' repeats the exit status: take it from there too, should 'exit' have been missed.
        c.on('close', (code_?: number | null, signal_?: string) => {
          closed = true;
          changed();
          if (!exited && (code_ !== undefined || signal_ !== undefined)) {
            exited = true;
            code = code_ ?? null;
            signal = signal_ ?? null;
          }
          if (ending) return; // killWhenOpen settles, with the deadline's or the abort's error
          if (!exited && this.ended) return fail(this.lastError); // channel torn down with the connection
          settle(() => resolve({ code, signal, stdout: Buffer.concat(stdout).toString('utf8'), stderr: stderrText() }));
        });
        io.onChannel?.({ channel: c, stdin }, disarm);
        killWhenOpen();
        if (!watcher) feedInput(); // buffered in the PassThrough until node-ssh pipes it, right after this
      };
      this.openChannel(wrapped.command, what, { stdin, onChannel, onStdout, onStderr }, fail).catch((err: Error) =>
        settle(() => reject(ending ? endError(ending) : err)),
      );
    });
  }

  /** End process group `pgid` on the host from a second channel (through sudo like any command), bounded. */
  private async endGroup(pgid: number, what: string): Promise<void> {
    if (this.ended || this.closing) return;
    const script = killScript(pgid);
    this.count++;
    this.opts.onCommand?.(maskSecrets(script));
    let kc: ClientChannel | undefined;
    // No channel slot: the command being ended holds one, and sshd's MaxSessions leaves room above ours.
    const done = this.execute(script, `end process group ${pgid} of \`${what}\``, { onChannel: (open) => (kc = open.channel) }).then(
      () => true,
      () => true,
    );
    if (!(await Promise.race([done, delay(KILL_BOUND_MS).then(() => false)]))) kc?.close();
  }

  /** End the held command's stdin, wait for it to exit, then close its channel if it did not. */
  private async releaseHeld(ch: ClientChannel, stdin: PassThrough, result: Promise<RemoteResult>): Promise<void> {
    const done = result.then(
      () => true,
      () => true,
    );
    stdin.end(); // node-ssh's pipe ends the channel's stdin (EOF) after what is still buffered
    const timeout = (ms: number) =>
      new Promise<false>((resolve) => {
        setTimeout(() => resolve(false), ms).unref();
      });
    if (await Promise.race([done, timeout(this.opts.releaseTimeoutMs ?? 5000)])) return;
    ch.close();
    await Promise.race([done, timeout(1000)]);
  }
}
