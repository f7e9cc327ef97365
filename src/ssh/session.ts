// One SSH connection per host, reused for every command. ssh2's Client is used directly rather than
// node-ssh: node-ssh's connect() rejects on the first 'error' event (ssh2 emits non-fatal ones, e.g.
// a dead ssh-agent, and goes on with the next key), its execCommand decodes each chunk on its own
// (splitting UTF-8 characters) and closes stdin at once (no password-after-prompt, no hold).
import net from 'node:net';
import ssh2, { type Client, type ClientChannel, type Ssh2Error } from 'ssh2';
import { ConnectError, HostStepError } from '../errors.js';
import type { HeldCommand, Remote, RemoteResult, RunOptions } from '../types.js';
import { redact as maskSecrets } from '../report/redact.js';
import { SudoPromptWatcher, findReadyLine, withSudoNote, wrapCommand } from './command.js';
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
  /** Verbose output: the label or script of each command, secrets masked. */
  onCommand?: (command: string) => void;
  /** Values masked in onCommand output and error messages. */
  secrets?: string[];
  /** Home directory for the default keys (tests). */
  homeDir?: string;
}

interface ExecIo {
  stdin?: string;
  /** Leave stdin open after writing (hold). */
  keepStdinOpen?: boolean;
  onChannel?: (channel: ClientChannel) => void;
  onStdout?: (chunk: Buffer) => void;
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

/** Connect, verify the host key against known_hosts (mandatory), authenticate. */
export async function connect(opts: ConnectOptions): Promise<SshSession> {
  const target = `${opts.user}@${endpointOf(opts.address, opts.port)}`;
  const auth = await planAuth(opts);
  const verifier = await createHostVerifier(opts).catch((err: Error) => {
    throw new ConnectError(opts.host, 'connect', `cannot read known_hosts file ${opts.knownHostsFile}: ${err.message}`, {
      hint: 'check --known-hosts',
      cause: err,
    });
  });
  const ctx: ConnectContext = {
    host: opts.host,
    user: opts.user,
    address: opts.address,
    port: opts.port,
    target,
    tried: auth.tried,
    knownHostsFile: opts.knownHostsFile,
    ...(verifier.algorithms ? { algorithms: verifier.algorithms } : {}),
  };
  const readyTimeout = opts.readyTimeoutMs ?? 20_000;
  const sock = await openSocket(ctx, opts.connectTimeoutMs ?? 10_000);
  const client = new ssh2.Client();
  return new Promise<SshSession>((resolve, reject) => {
    let settled = false;
    const verifierFailure = () => {
      const f = verifier.failure;
      if (f === undefined || f instanceof HostStepError) return f; // HostKeyError
      return new ConnectError(opts.host, 'connect', `cannot record the host key of ${target} in ${opts.knownHostsFile}: ${f.message}`, {
        hint: 'check that file and its directory are writable (--known-hosts)',
        cause: f,
      });
    };
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      client.destroy();
      sock.destroy();
      reject(verifierFailure() ?? err); // ssh2 only says "Host denied": the verifier kept the reason
    };
    const onError = (err: Ssh2Error) => {
      if (err.level === 'agent') return void ctx.tried.push(`(ssh-agent failed: ${err.message})`); // ssh2 goes on with the next key
      fail(sshError(ctx, err, readyTimeout));
    };
    const onClose = () => fail(new ConnectError(opts.host, 'connect', `${target} closed the connection during the SSH handshake`, { hint: 'is that port an SSH server (ansible_port)?' }));
    client.on('error', onError);
    client.on('close', onClose);
    client.once('ready', () => {
      settled = true;
      client.removeListener('error', onError);
      client.removeListener('close', onClose);
      resolve(new SshSession(client, opts, target)); // attaches its own 'error' listener right away
    });
    try {
      client.connect({
        sock,
        username: opts.user,
        ...(auth.privateKey ? { privateKey: auth.privateKey } : {}),
        ...(auth.passphrase !== undefined ? { passphrase: auth.passphrase } : {}),
        ...(auth.agent ? { agent: auth.agent } : {}),
        hostVerifier: (key, verify) => verifier.verify(key, verify),
        ...(verifier.algorithms ? { algorithms: { serverHostKey: verifier.algorithms } } : {}),
        readyTimeout,
        keepaliveInterval: opts.keepaliveIntervalMs ?? 2000,
        keepaliveCountMax: opts.keepaliveCountMax ?? 3,
      });
    } catch (err) {
      fail(err instanceof Error ? sshError(ctx, err, readyTimeout) : new Error(String(err)));
    }
  });
}

export class SshSession implements Remote {
  readonly host: string;
  private count = 0;
  private readonly channels: Semaphore;
  /** Rejecters of everything in flight, called when the connection goes away. */
  private readonly pending = new Set<(cause: Error | undefined) => void>();
  private readonly secrets: (string | undefined)[];
  private lastError: Error | undefined;
  private ended = false;
  private closing = false;

  constructor(
    private readonly client: Client,
    private readonly opts: ConnectOptions,
    /** user@address:port */
    readonly target: string,
  ) {
    this.host = opts.host;
    this.channels = new Semaphore(opts.maxChannels ?? 8);
    this.secrets = [...(opts.secrets ?? []), opts.becomePassword, opts.passphrase];
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

  /** Connection gone (dropped or closed). */
  get isClosed(): boolean {
    return this.ended || this.closing;
  }

  async run(script: string, opts: RunOptions = {}): Promise<RemoteResult> {
    const what = this.begin(script, opts.label);
    const release = await this.channels.acquire();
    try {
      return await this.execute(script, what, opts.stdin !== undefined ? { stdin: opts.stdin } : {});
    } finally {
      release();
    }
  }

  async hold(script: string, readyMarker: string): Promise<HeldCommand | RemoteResult> {
    const what = this.begin(script, undefined);
    const releaseSlot = await this.channels.acquire();
    return new Promise((resolve, reject) => {
      let channel: ClientChannel | undefined;
      let ready = false;
      const chunks: Buffer[] = [];
      const result = this.execute(script, what, {
        keepStdinOpen: true,
        onChannel: (ch) => (channel = ch),
        onStdout: (chunk) => {
          if (ready) return;
          chunks.push(chunk);
          const text = Buffer.concat(chunks).toString('utf8');
          const at = findReadyLine(text, readyMarker);
          if (at < 0 || !channel) return;
          ready = true;
          const ch = channel;
          let released: Promise<void> | undefined;
          resolve({ output: text.slice(0, at), release: () => (released ??= this.releaseHeld(ch, result)) });
        },
      });
      result.then(
        (r) => {
          releaseSlot();
          if (!ready) resolve(r); // ended before the marker: the caller reads why from the result
        },
        (err: Error) => {
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
      this.client.end();
    });
  }

  /** Count the command, show it (secrets masked), refuse on a dead connection. */
  private begin(script: string, label: string | undefined): string {
    const shown = maskSecrets(label ?? script, this.secrets);
    if (this.ended || this.closing) throw this.lostError(this.short(shown), this.lastError);
    this.count++;
    this.opts.onCommand?.(shown);
    return this.short(shown);
  }

  private short(text: string): string {
    const first = text.trim().split('\n')[0] ?? '';
    return first.length > 80 || text.trim().includes('\n') ? `${first.slice(0, 77)}...` : first;
  }

  private lostError(what: string, cause: Error | undefined): ConnectError {
    const why = this.closing ? 'was closed by kha-deploy' : `was lost${cause ? ` (${maskSecrets(cause.message, this.secrets)})` : ''}`;
    return new ConnectError(this.host, 'ssh', `connection to ${this.target} ${why} while running \`${what}\``, {
      ...(this.closing ? {} : { hint: LOST_HINT }),
      ...(cause ? { cause } : {}),
    });
  }

  private openChannel(command: string, what: string): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      const fail = (cause: Error | undefined) => reject(this.lostError(what, cause));
      const refused = (err: Error) => {
        this.pending.delete(fail);
        if (this.ended || /not connected/i.test(err.message)) return fail(this.lastError ?? err);
        reject(new ConnectError(this.host, 'ssh', `${this.target} refused a channel for \`${what}\`: ${err.message}`, { hint: LOST_HINT, cause: err }));
      };
      this.pending.add(fail);
      try {
        this.client.exec(command, (err, channel) => {
          if (err) return refused(err);
          this.pending.delete(fail);
          resolve(channel);
        });
      } catch (err) {
        refused(err as Error); // ssh2 throws "Not connected" when the socket is already gone
      }
    });
  }

  /** One exec channel: wrap, feed stdin (after sudo's prompt when a password is used), collect. */
  private async execute(script: string, what: string, io: ExecIo): Promise<RemoteResult> {
    const password = this.opts.becomePassword;
    const wrapped = wrapCommand(script, this.opts.become, this.opts.become && password !== undefined);
    const ch = await this.openChannel(wrapped.command, what);
    io.onChannel?.(ch);
    const watcher = wrapped.prompt && wrapped.startMarker ? new SudoPromptWatcher(wrapped.prompt, wrapped.startMarker) : undefined;
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    const feedInput = () => {
      if (io.stdin) ch.write(io.stdin);
      if (!io.keepStdinOpen) ch.end();
    };
    return new Promise<RemoteResult>((resolve, reject) => {
      let code: number | null = null;
      let signal: string | null = null;
      let exited = false;
      const fail = (cause: Error | undefined) => reject(this.lostError(what, cause));
      this.pending.add(fail);
      ch.on('error', () => undefined); // writes racing a closing channel; the outcome comes from 'close'
      ch.on('data', (chunk: Buffer) => {
        stdout.push(chunk);
        io.onStdout?.(chunk);
      });
      ch.stderr.on('data', (chunk: Buffer) => {
        if (!watcher) return void stderr.push(chunk);
        for (const event of watcher.push(chunk)) {
          if (event === 'password') ch.write(`${password}\n`);
          else if (event === 'started') feedInput();
          else ch.end(); // asked again: wrong password, never retry
        }
      });
      ch.on('exit', (c: number | null, s?: string) => {
        exited = true;
        code = c ?? null;
        signal = s ?? null;
      });
      // ssh2 may emit 'exit' before these listeners exist (a fast command's whole reply can arrive
      // with the channel confirmation); 'close' repeats the exit status, so take it from there too.
      ch.on('close', (c?: number | null, s?: string) => {
        if (!exited && (c !== undefined || s !== undefined)) {
          exited = true;
          code = c ?? null;
          signal = s ?? null;
        }
        this.pending.delete(fail);
        if (!exited && this.ended) return fail(this.lastError); // channel torn down with the connection
        resolve({
          code,
          signal,
          stdout: Buffer.concat(stdout).toString('utf8'),
          stderr: watcher ? watcher.text() : this.opts.become ? withSudoNote(Buffer.concat(stderr).toString('utf8')) : Buffer.concat(stderr).toString('utf8'),
        });
      });
      if (!watcher) feedInput();
    });
  }

  /** End the held command's stdin, wait for it to exit, then close its channel if it did not. */
  private async releaseHeld(ch: ClientChannel, result: Promise<RemoteResult>): Promise<void> {
    const done = result.then(
      () => true,
      () => true,
    );
    ch.end();
    const timeout = (ms: number) =>
      new Promise<false>((resolve) => {
        setTimeout(() => resolve(false), ms).unref();
      });
    if (await Promise.race([done, timeout(this.opts.releaseTimeoutMs ?? 5000)])) return;
    ch.close();
    await Promise.race([done, timeout(1000)]);
  }
}
