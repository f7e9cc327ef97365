// Test helper: real keys from ssh-keygen in a temp dir (fingerprints are compared with ssh-keygen's own).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestKey {
  type: string;
  /** Private key file (OpenSSH format). */
  file: string;
  /** `type base64` of the public key. */
  pub: string;
  blob: Buffer;
  /** SHA256:… as `ssh-keygen -lf` prints it. */
  fingerprint: string;
}

export function tempDir(prefix = 'kha-ssh-test-'): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function sshKeygen(dir: string, name: string, type: 'ed25519' | 'ecdsa' | 'rsa', passphrase = ''): TestKey {
  const file = join(dir, name);
  const bits = type === 'rsa' ? ['-b', '2048'] : type === 'ecdsa' ? ['-b', '384'] : [];
  execFileSync('ssh-keygen', ['-q', '-t', type, ...bits, '-N', passphrase, '-C', name, '-f', file]);
  const [t, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(' ');
  const fingerprint = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' }).split(' ')[1]!;
  return { type: t!, file, pub: `${t} ${b64}`, blob: Buffer.from(b64!, 'base64'), fingerprint };
}
