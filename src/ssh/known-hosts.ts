// OpenSSH known_hosts parsing and host-key matching, pure (no I/O). Hand-written because no
// maintained npm package parses known_hosts (hashed names, [host]:port, @revoked, @cert-authority,
// negation).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export interface KnownHostKey {
  /** Key type read from the blob itself (ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, …). */
  type: string;
  blob: Buffer;
}

export interface KnownHostEntry extends KnownHostKey {
  /** 1-based line in the file. */
  line: number;
  /** The file the line is in, when parseKnownHosts was told. */
  file?: string;
  revoked: boolean;
  /**
   * `@cert-authority`: the key signs host certificates for the matching hosts. ssh2 1.17 cannot
   * negotiate host certificates (no `*-cert-v01@openssh.com` host key algorithm), so such a line
   * never makes a plain key trusted; it only lets the refusal say why.
   */
  certAuthority?: boolean;
  /** Plain entries: comma-separated patterns (may start with `!`, may hold `*`/`?`). */
  patterns: string[];
  /** Hashed entries (`|1|salt|hash`): HMAC-SHA1 of the host name keyed with salt. */
  hashed?: { salt: Buffer; hash: Buffer };
}

export type HostKeyVerdict =
  | { result: 'match' }
  | { result: 'unknown' }
  | { result: 'changed'; known: string[]; where: string[] }
  | { result: 'revoked'; where: string[] }
  /** No plain key known, but @cert-authority lines cover the host (file:line each). */
  | { result: 'cert-authority'; where: string[] };

/** ssh2 serverHostKey algorithm names for each key type we can verify. */
const ALGORITHMS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

/** rsa-sha2-256/512 are signature algorithms over an ssh-rsa key. */
export function normalizeKeyType(name: string): string {
  return name === 'rsa-sha2-256' || name === 'rsa-sha2-512' ? 'ssh-rsa' : name;
}

/** The first SSH string of a wire-format public key blob is its key type. */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) throw new Error('public key blob too short');
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) throw new Error('malformed public key blob');
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** `SHA256:…` exactly as `ssh-keygen -lf` prints it (base64 without padding). */
export function fingerprintSha256(blob: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** The host name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise; lower case. */
export function hostLookupName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

function decodeBase64(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text)) return undefined;
  return Buffer.from(text, 'base64');
}

function parseHashed(field: string): { salt: Buffer; hash: Buffer } | undefined {
  const parts = field.split('|'); // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[1] !== '1') return undefined;
  const salt = decodeBase64(parts[2] ?? '');
  const hash = decodeBase64(parts[3] ?? '');
  if (!salt || !hash || hash.length !== 20) return undefined;
  return { salt, hash };
}

/** Parse known_hosts text; malformed lines are skipped, as ssh does. */
export function parseKnownHosts(text: string, file?: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const fields = (lines[i] ?? '').trim().split(/[ \t]+/);
    if (fields[0] === '' || fields[0]?.startsWith('#')) continue;
    let revoked = false;
    let certAuthority = false;
    if (fields[0]?.startsWith('@')) {
      if (fields[0] === '@revoked') revoked = true;
      else if (fields[0] === '@cert-authority') certAuthority = true;
      else continue; // an unknown marker: ssh skips the line too
      fields.shift();
    }
    const [hosts, typeField, keyField] = fields;
    if (!hosts || !typeField || !keyField) continue;
    const blob = decodeBase64(keyField);
    if (!blob) continue;
    let type: string;
    try {
      type = keyTypeOfBlob(blob);
    } catch {
      continue;
    }
    if (normalizeKeyType(typeField) !== type) continue; // the type field must describe the blob
    const entry: KnownHostEntry = { line: i + 1, ...(file !== undefined ? { file } : {}), revoked, ...(certAuthority ? { certAuthority } : {}), patterns: [], type, blob };
    if (hosts.startsWith('|')) {
      const hashed = parseHashed(hosts);
      if (!hashed) continue;
      entry.hashed = hashed;
    } else {
      entry.patterns = hosts.split(',').filter((p) => p !== '');
    }
    entries.push(entry);
  }
  return entries;
}

/** OpenSSH wildcard match: `*` any run, `?` one character, case-insensitive. */
export function matchPattern(name: string, pattern: string): boolean {
  const re = pattern
    .toLowerCase()
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(name.toLowerCase());
}

/** A pattern list matches when some positive pattern matches and no negated one does. */
export function matchPatternList(name: string, patterns: readonly string[]): boolean {
  let positive = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(name, p.slice(1))) return false;
    } else if (matchPattern(name, p)) {
      positive = true;
    }
  }
  return positive;
}

function entryMatches(entry: KnownHostEntry, name: string): boolean {
  if (entry.hashed) {
    const mac = createHmac('sha1', entry.hashed.salt).update(name).digest();
    return timingSafeEqual(mac, entry.hashed.hash);
  }
  return matchPatternList(name, entry.patterns);
}

/** `file:line` of an entry (`line N` when the file is not known). */
export function entryLocation(e: Pick<KnownHostEntry, 'file' | 'line'>): string {
  return e.file !== undefined ? `${e.file}:${e.line}` : `line ${e.line}`;
}

/**
 * Keys known for host:port, the revoked blobs that apply to it, and the @cert-authority lines that
 * cover it; each with the file:line it came from.
 */
export function lookupHost(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
): { keys: (KnownHostKey & { where: string })[]; revoked: { blob: Buffer; where: string }[]; authorities: KnownHostEntry[] } {
  const name = hostLookupName(host, port);
  const keys: (KnownHostKey & { where: string })[] = [];
  const revoked: { blob: Buffer; where: string }[] = [];
  const authorities: KnownHostEntry[] = [];
  for (const e of entries) {
    if (!entryMatches(e, name)) continue;
    if (e.revoked) revoked.push({ blob: e.blob, where: entryLocation(e) });
    else if (e.certAuthority) authorities.push(e);
    else keys.push({ type: e.type, blob: e.blob, where: entryLocation(e) });
  }
  return { keys, revoked, authorities };
}

/**
 * Like OpenSSH: a revoked key is refused whatever else is known; a known blob matches; any other
 * key for a host that has known keys is a change (we only offer the known key types, so a
 * different blob — or type — means the host's identity changed); otherwise the host is unknown.
 */
export function verifyHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  presented: Buffer,
): HostKeyVerdict {
  const { keys, revoked, authorities } = lookupHost(entries, host, port);
  const revokedHere = revoked.filter((r) => r.blob.equals(presented));
  if (revokedHere.length > 0) return { result: 'revoked', where: revokedHere.map((r) => r.where) };
  if (keys.some((k) => k.blob.equals(presented))) return { result: 'match' };
  if (keys.length > 0) return { result: 'changed', known: [...new Set(keys.map((k) => fingerprintSha256(k.blob)))], where: [...new Set(keys.map((k) => k.where))] };
  if (authorities.length > 0) return { result: 'cert-authority', where: authorities.map(entryLocation) };
  return { result: 'unknown' };
}

/** One known_hosts line as `ssh` writes it for accept-new (plain host, `[host]:port` when port≠22). */
export function formatKnownHostsLine(host: string, port: number, type: string, blob: Buffer): string {
  return `${hostLookupName(host, port)} ${normalizeKeyType(type)} ${blob.toString('base64')}`;
}

/** ssh2 `algorithms.serverHostKey` offering only the key types known for the host. */
export function hostKeyAlgorithmsFor(keys: readonly { type: string }[]): string[] {
  const out: string[] = [];
  for (const k of keys) {
    for (const alg of ALGORITHMS[normalizeKeyType(k.type)] ?? []) if (!out.includes(alg)) out.push(alg);
  }
  return out;
}
