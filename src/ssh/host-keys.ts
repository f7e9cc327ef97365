// Host key policy around ssh2's hostVerifier: verify against known_hosts (the user's file, then the
// other files: more UserKnownHostsFile entries, /etc/ssh/ssh_known_hosts), accept-new appends to the
// user's file for unknown hosts only, and keep the reason of a refusal (ssh2 only says "Host denied").
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { HostKeyError } from '../errors.js';
import {
  fingerprintSha256,
  formatKnownHostsLine,
  hostKeyAlgorithmsFor,
  keyTypeOfBlob,
  lookupHost,
  parseKnownHosts,
  verifyHostKey,
  type HostKeyVerdict,
  type KnownHostEntry,
} from './known-hosts.js';

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}

/** Entries of a known_hosts file, each with its file:line; a missing file knows no host. */
export async function readKnownHosts(file: string): Promise<KnownHostEntry[]> {
  return parseKnownHosts(await readText(file), file);
}

/** Entries of several known_hosts files, in order (missing files know no host). */
export async function readKnownHostsFiles(files: readonly string[]): Promise<KnownHostEntry[]> {
  const all: KnownHostEntry[] = [];
  for (const f of [...new Set(files)]) all.push(...(await readKnownHosts(f)));
  return all;
}

// Appends from parallel connects in this process run one at a time (re-read, re-check, append).
let appendQueue: Promise<unknown> = Promise.resolve();

function serialized<T>(fn: () => Promise<T>): Promise<T> {
  const next = appendQueue.then(fn, fn);
  appendQueue = next.catch(() => undefined);
  return next;
}

/**
 * accept-new: append `host key` for an unknown host, never rewriting the file. The file is read
 * again under the in-process queue, so two connects to the same new host append one line.
 */
export function acceptNewHostKey(file: string, address: string, port: number, blob: Buffer): Promise<HostKeyVerdict> {
  return serialized(async () => {
    const text = await readText(file);
    const verdict = verifyHostKey(parseKnownHosts(text, file), address, port, blob);
    if (verdict.result !== 'unknown') return verdict;
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    const prefix = text !== '' && !text.endsWith('\n') ? '\n' : '';
    // flag 'a' is O_APPEND: other writers' lines are never overwritten.
    await appendFile(file, `${prefix}${formatKnownHostsLine(address, port, keyTypeOfBlob(blob), blob)}\n`, { flag: 'a', mode: 0o644 });
    return { result: 'match' } as const;
  });
}

/** `address:port` as people write it ([v6]:port). */
export function endpointOf(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

const HOST_KEY_FILES: Record<string, string> = {
  'ssh-ed25519': 'ssh_host_ed25519_key.pub',
  'ssh-rsa': 'ssh_host_rsa_key.pub',
};

/** The file part of `file:line`. */
const fileOf = (where: string) => where.replace(/:\d+$/, '');

/**
 * The refusal as an error. `label` (a jump host: `jump host kha@10.0.0.5:22 for master1`) is added
 * to the endpoint so the message names the hop whose key was refused.
 */
export function hostKeyError(
  host: string,
  address: string,
  port: number,
  knownHostsFile: string,
  verdict: Exclude<HostKeyVerdict, { result: 'match' }>,
  blob: Buffer,
  label?: string,
): HostKeyError {
  const endpoint = endpointOf(address, port) + (label ? ` (${label})` : '');
  const fp = fingerprintSha256(blob);
  const type = keyTypeOfBlob(blob);
  const name = port === 22 ? address : `[${address}]:${port}`;
  const pub = HOST_KEY_FILES[type] ?? `ssh_host_${type.startsWith('ecdsa') ? 'ecdsa' : type}_key.pub`;
  const compare = `Compare it with \`ssh-keygen -lf /etc/ssh/${pub}\` run on the host's console`;
  switch (verdict.result) {
    case 'unknown':
      return new HostKeyError(host, 'unknown', endpoint, fp, [], {
        hint:
          `the host presented ${type} key ${fp}. ${compare}; ` +
          `if it matches, trust it with \`ssh-keyscan -p ${port} ${address} >> ${knownHostsFile}\` or rerun with --accept-new-host-keys`,
      });
    case 'cert-authority':
      // ssh2 1.17 offers no *-cert-v01@openssh.com host key algorithm: the host's certificate is never
      // seen, only its plain key, which a CA line cannot vouch for. Say so instead of pretending.
      return new HostKeyError(host, 'unknown', endpoint, fp, [], {
        hint:
          `${name} is trusted only through @cert-authority (${verdict.where.join(', ')}), and kha-deploy cannot verify host certificates ` +
          `(its SSH library, ssh2 1.17, does not negotiate them), so it sees only the host's plain ${type} key ${fp}. ${compare}; ` +
          `if it matches, add it with \`ssh-keyscan -p ${port} ${address} >> ${knownHostsFile}\` (--accept-new-host-keys does not apply to hosts under a CA)`,
      });
    case 'changed': {
      const files = [...new Set(verdict.where.map(fileOf))];
      return new HostKeyError(host, 'changed', endpoint, fp, verdict.known, {
        hint:
          `the known key is at ${verdict.where.join(', ')}. If the host was reinstalled, remove the old line with ` +
          files.map((f) => `\`ssh-keygen -R '${name}' -f ${f}\``).join(' and ') +
          ' and trust the new key; otherwise this may be an attack: do not proceed',
      });
    }
    case 'revoked':
      return new HostKeyError(host, 'revoked', endpoint, fp, [], {
        hint: `this key is marked @revoked (${verdict.where.join(', ')}): kha-deploy will not connect until the host has a new key`,
      });
  }
}

export interface HostVerifier {
  /** ssh2 `hostVerifier` (callback form). */
  verify(key: Buffer, done: (ok: boolean) => void): void;
  /** ssh2 `algorithms.serverHostKey`: the known types only, or undefined when the host is unknown. */
  algorithms: string[] | undefined;
  /** Why the key was refused, once it was. */
  failure: HostKeyError | Error | undefined;
}

export async function createHostVerifier(opts: {
  host: string;
  address: string;
  port: number;
  /** The user's known_hosts: read first, and where accept-new appends. */
  knownHostsFile: string;
  /** Read after it, never written: more UserKnownHostsFile entries, the GlobalKnownHostsFile ones. */
  extraKnownHostsFiles?: readonly string[];
  acceptNewHostKeys: boolean;
  /** Names a jump host in errors. */
  label?: string;
}): Promise<HostVerifier> {
  const entries = await readKnownHostsFiles([opts.knownHostsFile, ...(opts.extraKnownHostsFiles ?? [])]);
  const known = lookupHost(entries, opts.address, opts.port).keys;
  const algorithms = hostKeyAlgorithmsFor(known);
  let trusted: Buffer | undefined; // ssh2 asks again at every re-key
  const v: HostVerifier = {
    algorithms: algorithms.length > 0 ? algorithms : undefined,
    failure: undefined,
    verify(key, done) {
      if (trusted?.equals(key)) return done(true);
      const refuse = (verdict: Exclude<HostKeyVerdict, { result: 'match' }>) => {
        v.failure = hostKeyError(opts.host, opts.address, opts.port, opts.knownHostsFile, verdict, key, opts.label);
        done(false);
      };
      let verdict: HostKeyVerdict;
      try {
        verdict = verifyHostKey(entries, opts.address, opts.port, key);
      } catch (err) {
        v.failure = err as Error;
        return done(false);
      }
      if (verdict.result === 'match') {
        trusted = key;
        return done(true);
      }
      if (verdict.result !== 'unknown' || !opts.acceptNewHostKeys) return refuse(verdict);
      acceptNewHostKey(opts.knownHostsFile, opts.address, opts.port, key).then(
        (after) => {
          if (after.result !== 'match') return refuse(after);
          trusted = key;
          done(true);
        },
        (err: Error) => {
          v.failure = err;
          done(false);
        },
      );
    },
  };
  return v;
}
