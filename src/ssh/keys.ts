// Which credentials to offer: the inventory's key file, else ssh-agent plus the first default key.
// Keys are parsed up front (ssh2's own parser) so an encrypted key without passphrase is a clear
// error before any connection, not ssh2's "Cannot parse privateKey".
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { ConnectError } from '../errors.js';

export const PASSPHRASE_ENV = 'KHA_SSH_PASSPHRASE';

export interface AuthPlan {
  privateKey?: Buffer;
  passphrase?: string;
  agent?: string;
  /** What is offered, in words, for error messages (never a secret). */
  tried: string[];
}

export interface AuthOptions {
  host: string;
  privateKeyFile?: string;
  passphrase?: string;
  agentSocket?: string;
  /** Home directory for the default keys (tests). */
  homeDir?: string;
}

type KeyCheck = { ok: true; data: Buffer } | { ok: false; reason: 'missing' | 'encrypted' | 'bad-passphrase' | 'invalid'; detail: string };

/** Read a private key file and check that ssh2 can use it with the passphrase given. */
export async function checkKeyFile(file: string, passphrase?: string): Promise<KeyCheck> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    return { ok: false, reason: 'missing', detail: (err as Error).message };
  }
  const parsed = ssh2.utils.parseKey(data, passphrase);
  if (!(parsed instanceof Error)) return { ok: true, data };
  const msg = parsed.message;
  if (/no passphrase given/i.test(msg)) return { ok: false, reason: 'encrypted', detail: msg };
  if (passphrase !== undefined && /passphrase|decrypt|integrity/i.test(msg)) return { ok: false, reason: 'bad-passphrase', detail: msg };
  return { ok: false, reason: 'invalid', detail: msg };
}

function keyError(host: string, file: string, check: Exclude<KeyCheck, { ok: true }>): ConnectError {
  switch (check.reason) {
    case 'missing':
      return new ConnectError(host, 'connect', `cannot read private key ${file}: ${check.detail}`, {
        hint: 'check ansible_ssh_private_key_file in the inventory',
      });
    case 'encrypted':
      return new ConnectError(host, 'connect', `private key ${file} is encrypted and no passphrase was given`, {
        hint: `set ${PASSPHRASE_ENV} (or run on a terminal to be prompted), or load the key into ssh-agent with ssh-add`,
      });
    case 'bad-passphrase':
      return new ConnectError(host, 'connect', `the passphrase does not decrypt private key ${file}`, {
        hint: `check ${PASSPHRASE_ENV}`,
      });
    case 'invalid':
      return new ConnectError(host, 'connect', `private key ${file} cannot be used: ${check.detail}`, {
        hint: 'use an OpenSSH or PEM private key (ed25519, ecdsa or rsa)',
      });
  }
}

/**
 * Like ssh: an explicit key file is used (through the agent when it is encrypted and no passphrase
 * was given but an agent runs); without one, the agent and the first of ~/.ssh/id_ed25519, id_rsa.
 */
export async function planAuth(opts: AuthOptions): Promise<AuthPlan> {
  const plan: AuthPlan = { tried: [] };
  const useAgent = () => {
    if (!opts.agentSocket) return false;
    plan.agent = opts.agentSocket;
    plan.tried.push(`ssh-agent at ${opts.agentSocket}`);
    return true;
  };
  const useKey = (file: string, data: Buffer) => {
    plan.privateKey = data;
    if (opts.passphrase !== undefined) plan.passphrase = opts.passphrase;
    plan.tried.push(`key ${file}`);
  };

  if (opts.privateKeyFile) {
    const check = await checkKeyFile(opts.privateKeyFile, opts.passphrase);
    if (check.ok) useKey(opts.privateKeyFile, check.data);
    else if (check.reason === 'encrypted' && useAgent()) plan.tried.push(`(key ${opts.privateKeyFile} is encrypted and no passphrase was given)`);
    else throw keyError(opts.host, opts.privateKeyFile, check);
    return plan;
  }

  const agent = useAgent();
  const home = opts.homeDir ?? homedir();
  for (const name of ['id_ed25519', 'id_rsa']) {
    const file = join(home, '.ssh', name);
    const check = await checkKeyFile(file, opts.passphrase);
    if (check.ok) {
      useKey(file, check.data);
      break;
    }
    if (check.reason === 'missing') continue;
    if (agent) {
      plan.tried.push(`(skipped ${file}: ${check.reason === 'encrypted' ? 'encrypted, no passphrase' : check.reason})`);
      break;
    }
    throw keyError(opts.host, file, check);
  }
  if (!plan.agent && !plan.privateKey) {
    throw new ConnectError(opts.host, 'connect', 'no SSH credentials: no key file in the inventory, no ssh-agent, no ~/.ssh/id_ed25519 or ~/.ssh/id_rsa', {
      hint: 'set ansible_ssh_private_key_file for the host, or start ssh-agent and ssh-add a key',
    });
  }
  return plan;
}
