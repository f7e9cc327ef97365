// ansible.cfg: found as Ansible 2.14 finds it (ANSIBLE_CONFIG, ./ansible.cfg unless the directory is
// world-writable, ~/.ansible.cfg, /etc/ansible/ansible.cfg; the first that exists), read with the `ini`
// package (configparser-style files are what it parses correctly, unlike inventories). Its values are
// defaults under every inventory variable, as in Ansible.
import { parse } from 'ini';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { InventoryProblem } from '../errors.js';
import type { Val } from './model.js';

/** [section] key → the inventory variable it is the default of. */
const SETTINGS: readonly { section: string; key: string; variable: string }[] = [
  { section: 'defaults', key: 'remote_user', variable: 'ansible_user' },
  { section: 'defaults', key: 'remote_port', variable: 'ansible_port' },
  { section: 'defaults', key: 'private_key_file', variable: 'ansible_ssh_private_key_file' },
  { section: 'privilege_escalation', key: 'become', variable: 'ansible_become' },
  { section: 'privilege_escalation', key: 'become_user', variable: 'ansible_become_user' },
  { section: 'privilege_escalation', key: 'become_method', variable: 'ansible_become_method' },
];

export interface AnsibleCfg {
  file: string;
  /** Defaults for our variables (kind 'config'); the lowest precedence. */
  config: Val[];
  /** [defaults] inventory: absolute paths, used when -i is not given. */
  inventory?: string[];
  warnings: string[];
  problems: (InventoryProblem & { file: string })[];
}

export interface CfgEnv {
  env: Record<string, string | undefined>;
  cwd: string;
  home: string;
  exists: (path: string) => 'file' | 'dir' | undefined;
  /** The directory is writable by everyone (Ansible then ignores ./ansible.cfg). */
  worldWritable: (dir: string) => boolean;
}

const expandHome = (p: string, home: string) => (p === '~' ? home : p.startsWith('~/') ? join(home, p.slice(2)) : p);

/** The ansible.cfg Ansible would read, or undefined. */
export function findAnsibleCfg(e: CfgEnv): string | undefined {
  const candidates: string[] = [];
  const fromEnv = e.env.ANSIBLE_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') {
    const p = resolve(e.cwd, expandHome(fromEnv, e.home));
    candidates.push(e.exists(p) === 'dir' ? join(p, 'ansible.cfg') : p);
  }
  if (!e.worldWritable(e.cwd)) candidates.push(join(e.cwd, 'ansible.cfg'));
  candidates.push(join(e.home, '.ansible.cfg'), '/etc/ansible/ansible.cfg');
  return candidates.find((c) => e.exists(c) === 'file');
}

/** 1-based line of `key` in `[section]` (configparser keys are case-insensitive), or 1. */
function lineOf(text: string, section: string, key: string): number {
  let current = '';
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i]!;
    const h = /^\s*\[([^\]]+)\]/.exec(l);
    if (h) current = h[1]!.trim();
    else if (current === section && new RegExp(`^\\s*${key}\\s*[=:]`, 'i').test(l)) return i + 1;
  }
  return 1;
}

/** What an ansible.cfg gives kha-deploy. */
export function readAnsibleCfg(text: string, file: string, home = homedir()): AnsibleCfg {
  const out: AnsibleCfg = { file, config: [], warnings: [], problems: [] };
  // configparser also takes `key: value`, which `ini` does not: refuse it for the keys we read rather than miss them.
  for (const s of [...SETTINGS, { section: 'defaults', key: 'inventory' }, { section: 'defaults', key: 'host_key_checking' }]) {
    const line = lineOf(text, s.section, s.key);
    if (new RegExp(`^\\s*${s.key}\\s*:`, 'i').test(text.split(/\r?\n/)[line - 1] ?? ''))
      out.problems.push({ file, line, variable: s.key, message: `${s.key} is written as "${s.key}: value", which kha-deploy does not read`, hint: `write ${s.key} = value` });
  }
  let data: Record<string, unknown>;
  try {
    data = parse(text, { bracketedArray: false });
  } catch (e) {
    out.problems.push({ file, message: `ansible.cfg cannot be read: ${(e as Error).message}` });
    return out;
  }
  const get = (section: string, key: string): string | undefined => {
    const sec = data[section];
    if (!sec || typeof sec !== 'object') return undefined;
    const k = Object.keys(sec).find((x) => x.toLowerCase() === key);
    const v = k === undefined ? undefined : (sec as Record<string, unknown>)[k];
    return v === undefined || v === null || typeof v === 'object' ? undefined : String(v).trim();
  };
  for (const s of SETTINGS) {
    let v = get(s.section, s.key);
    if (v === undefined || v === '') continue;
    if (s.key === 'private_key_file') v = expandHome(v, home);
    out.config.push({ key: s.variable, value: v, file, line: lineOf(text, s.section, s.key), scope: `ansible.cfg [${s.section}] ${s.key}`, kind: 'config' });
  }
  const inv = get('defaults', 'inventory');
  // Ansible resolves a relative path in ansible.cfg against the file's directory.
  if (inv) out.inventory = inv.split(',').map((p) => p.trim()).filter(Boolean).map((p) => (isAbsolute(expandHome(p, home)) ? expandHome(p, home) : resolve(dirname(file), p)));
  const hkc = get('defaults', 'host_key_checking');
  if (hkc !== undefined && ['false', 'no', 'off', '0', 'n', 'f'].includes(hkc.toLowerCase()))
    out.warnings.push(`${file}: host_key_checking = ${hkc} is not honoured: kha-deploy always verifies host keys against known_hosts (see --accept-new-host-keys)`);
  return out;
}
