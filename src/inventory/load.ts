// Read the inventory as Ansible does: -i FILE (INI, or YAML by extension) or -i DIR (every file in it
// that Ansible would read), the group_vars/ and host_vars/ beside it, and ansible.cfg's defaults; each
// file checked (size, binary, encoding) before parsing; then validate. Problems → InventoryError (exit 2).
import { readdirSync, statSync } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { InventoryError, UsageError, type InventoryProblem } from '../errors.js';
import type { ClusterSpec } from '../types.js';
import { type AnsibleCfg, findAnsibleCfg, readAnsibleCfg } from './ansible-cfg.js';
import { type VarsFile, type VarsFiles, buildModel } from './model.js';
import { type RawInventory, parseInventoryText } from './parse.js';
import { type InventoryInput, validateSources } from './validate.js';
import { mappingVars, parseYamlInventory, readYaml } from './yaml-inventory.js';
import { resolveUnicastAddresses, type Lookup } from './resolve.js';

/** An inventory is a few kilobytes; 1 MiB leaves room and keeps a wrong path (a disk image…) cheap. */
export const MAX_INVENTORY_BYTES = 1024 * 1024;

function refuse(file: string, message: string, hint?: string): never {
  throw new InventoryError(file, [{ message, ...(hint ? { hint } : {}) }]);
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Inventory text from `file`, or InventoryError: missing, not a regular file, too big, empty, binary, not UTF-8. */
export async function readInventoryText(file: string, allowEmpty = false): Promise<string> {
  let size: number;
  try {
    const st = await stat(file);
    if (!st.isFile()) refuse(file, `inventory file is not a regular file`, 'pass the path of an INI inventory file with -i');
    size = st.size;
  } catch (e) {
    if (e instanceof InventoryError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') refuse(file, `inventory file does not exist`, 'check the path given with -i');
    if (code === 'EACCES') refuse(file, `inventory file cannot be read (permission denied)`);
    refuse(file, `inventory file cannot be read: ${(e as Error).message}`);
  }
  if (size > MAX_INVENTORY_BYTES)
    refuse(file, `inventory file is ${mib(size)}: an inventory is at most ${mib(MAX_INVENTORY_BYTES)}`, 'check that -i points at the inventory file');

  // Read at most one byte past the limit: the file may have grown since stat.
  const buf = Buffer.alloc(MAX_INVENTORY_BYTES + 1);
  let length = 0;
  try {
    const fh = await open(file, 'r');
    try {
      for (let n = -1; n !== 0 && length < buf.length; length += n) ({ bytesRead: n } = await fh.read(buf, length, buf.length - length, null));
    } finally {
      await fh.close();
    }
  } catch (e) {
    refuse(file, `inventory file cannot be read: ${(e as Error).message}`);
  }
  const bytes = buf.subarray(0, length);
  if (length > MAX_INVENTORY_BYTES) refuse(file, `inventory file is larger than ${mib(MAX_INVENTORY_BYTES)}`);
  if (bytes.includes(0)) refuse(file, `inventory file contains NUL bytes: it is a binary file, not an INI inventory`, 'check that -i points at the inventory file');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    refuse(file, `inventory file is not valid UTF-8 text`, 'save the inventory as UTF-8');
  }
  if (text.trim() === '' && !allowEmpty) refuse(file, `inventory file is empty`, 'list the masters under [masters] and set vip under [masters:vars]; see inventories/example.ini');
  return text;
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

function kindOf(path: string): 'file' | 'dir' | undefined {
  try {
    const st = statSync(path);
    return st.isDirectory() ? 'dir' : st.isFile() ? 'file' : undefined;
  } catch {
    return undefined;
  }
}

/** Ansible 2.14's INVENTORY_IGNORE_EXTS (REJECT_EXTS + .orig .ini .cfg .retry) and always-ignored names, for files in an inventory directory. */
const IGNORED_EXTS = ['.pyc', '.pyo', '.swp', '.bak', '~', '.rpm', '.md', '.txt', '.rst', '.orig', '.ini', '.cfg', '.retry'];
const IGNORED_NAMES = /^(\.|host_vars$|group_vars$|vars_plugins$)/;

/** The files Ansible reads from an inventory directory (sorted, recursive), and the .ini files it skips there. */
export function inventoryDirFiles(dir: string): { files: string[]; skippedIni: string[] } {
  const files: string[] = [];
  const skippedIni: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = join(dir, name);
    if (IGNORED_NAMES.test(name)) continue;
    if (IGNORED_EXTS.some((x) => name.endsWith(x))) {
      if (name.endsWith('.ini')) skippedIni.push(relative(dir, full));
      continue;
    }
    const kind = kindOf(full);
    if (kind === 'dir') {
      const sub = inventoryDirFiles(full);
      files.push(...sub.files);
      skippedIni.push(...sub.skippedIni.map((f) => join(name, f)));
    } else if (kind === 'file') files.push(full);
  }
  return { files, skippedIni };
}

const isYaml = (file: string) => ['.yml', '.yaml', '.json'].includes(extname(file).toLowerCase());

async function parseFile(file: string, allowEmpty: boolean): Promise<RawInventory> {
  const text = await readInventoryText(file, allowEmpty);
  // Ansible would run an executable with #! as a dynamic inventory script.
  if (text.startsWith('#!') && (statSync(file).mode & 0o111) !== 0)
    refuse(file, 'this is an executable script (#!): Ansible runs it as a dynamic inventory; kha-deploy reads static inventories only', 'write its output to a YAML file (ansible-inventory -i SCRIPT --list -y > hosts.yml) and pass that with -i');
  return isYaml(file) ? parseYamlInventory(text, file) : parseInventoryText(text, file);
}

/** group_vars/NAME or host_vars/NAME as Ansible's host_group_vars finds them: NAME (file or directory), NAME.yml, NAME.yaml, NAME.json, the first that exists. */
export function varsFilePaths(base: string, name: string): string[] {
  for (const ext of ['', '.yml', '.yaml', '.json']) {
    const p = join(base, name + ext);
    const kind = kindOf(p);
    if (kind === 'file') return [p];
    if (kind === 'dir') return dirVarsFiles(p);
  }
  return [];
}

/** A vars directory: sorted, recursive into subdirectories without an extension, files without an extension or with .yml/.yaml/.json; hidden and ~ files skipped. */
function dirVarsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.endsWith('~')) continue;
    const full = join(dir, name);
    const ext = extname(name);
    const kind = kindOf(full);
    if (kind === 'dir' && !ext) out.push(...dirVarsFiles(full));
    else if (kind === 'file' && (!ext || ['.yml', '.yaml', '.json'].includes(ext))) out.push(full);
  }
  return out;
}

async function readVarsFile(file: string, base: string, problems: (InventoryProblem & { file: string })[]): Promise<VarsFile | undefined> {
  let text: string;
  try {
    text = await readInventoryText(file, true);
  } catch (e) {
    if (e instanceof InventoryError) for (const p of e.problems) problems.push({ ...p, file });
    return undefined;
  }
  if (text.startsWith('$ANSIBLE_VAULT')) {
    problems.push({ file, line: 1, message: 'this vars file is encrypted with ansible-vault: kha-deploy cannot read it', hint: 'keep the variables kha-deploy reads in a file that is not encrypted' });
    return undefined;
  }
  const y = readYaml(text);
  if (y.problems.length) {
    for (const p of y.problems) problems.push({ ...p, file });
    return undefined;
  }
  if (y.data === null || y.data === undefined) return undefined; // an empty file adds nothing, as in Ansible
  if (typeof y.data !== 'object' || Array.isArray(y.data)) {
    problems.push({ file, line: y.lineOf(y.root), message: 'a vars file must be a mapping of variable names to values' });
    return undefined;
  }
  return { file, scope: relative(base, file), vars: mappingVars(y.root, y.lineOf) };
}

export interface LoadOptions {
  env?: Record<string, string | undefined>;
  cwd?: string;
  home?: string;
  /** Name resolution for vrrp_unicast masters named by DNS names (default: the system's, dns.lookup). */
  lookup?: Lookup;
}

/**
 * Read, parse and validate the inventory at `path` (a file or a directory); without `path`, the one
 * ANSIBLE_INVENTORY or ansible.cfg's [defaults] inventory names. Every problem is an InventoryError (exit 2).
 */
export async function loadInventory(path?: string, opts: LoadOptions = {}): Promise<ClusterSpec> {
  const home = opts.home ?? homedir();
  return resolveUnicastAddresses(validateSources(await readSources(path, opts), { fileExists: isFile, homeDir: home }), opts.lookup);
}

/** Everything loadInventory reads, before validation (also what the Ansible comparison tests inspect). */
export async function readSources(path?: string, opts: LoadOptions = {}): Promise<InventoryInput> {
  const env = opts.env ?? process.env;
  const cwd = opts.cwd ?? process.cwd();
  const home = opts.home ?? homedir();
  const cfgFile = findAnsibleCfg({
    env,
    cwd,
    home,
    exists: kindOf,
    worldWritable: (d) => {
      try {
        return (statSync(d).mode & 0o002) !== 0;
      } catch {
        return true;
      }
    },
  });
  let cfg: AnsibleCfg | undefined;
  if (cfgFile) cfg = readAnsibleCfg(await readFile(cfgFile, 'utf8').catch(() => ''), cfgFile, home);

  const sources = path !== undefined ? [resolve(cwd, path)] : env.ANSIBLE_INVENTORY ? env.ANSIBLE_INVENTORY.split(',').map((p) => resolve(cwd, p.trim())) : cfg?.inventory;
  if (!sources || sources.length === 0)
    throw new UsageError(`no inventory given: no -i, no $ANSIBLE_INVENTORY, and ${cfgFile ? `no inventory = in ${cfgFile}` : 'no ansible.cfg'}`, {
      hint: 'pass -i FILE|DIR (or set inventory = FILE under [defaults] in ansible.cfg)',
    });
  const main = sources[0]!;

  const inventories: RawInventory[] = [];
  const bases: string[] = [];
  for (const src of sources) {
    if (kindOf(src) === 'dir') {
      const { files, skippedIni } = inventoryDirFiles(src);
      if (files.length === 0) {
        const why = skippedIni.length ? `: Ansible skips ${skippedIni.join(', ')} there (.ini files are in its INVENTORY_IGNORE_EXTS)` : '';
        refuse(src, `inventory directory holds no inventory file${why}`, skippedIni.length ? `pass the file itself with -i ${join(src, skippedIni[0]!)}` : 'pass an inventory file, or a directory holding one, with -i');
      }
      for (const f of files) inventories.push(await parseFile(f, true));
      bases.push(src);
    } else {
      inventories.push(await parseFile(src, false));
      bases.push(dirname(src));
    }
  }

  // Vars files of every group and host the inventory defines, from beside each source.
  const model = buildModel(inventories);
  const problems: (InventoryProblem & { file: string })[] = [...(cfg?.problems ?? [])];
  const varsFiles: VarsFiles = { group: new Map(), host: new Map() };
  for (const base of bases) {
    for (const [kind, names] of [
      ['group', [...model.groups.keys()]],
      ['host', [...model.hosts.keys()]],
    ] as const) {
      const dir = join(base, `${kind}_vars`);
      if (kindOf(dir) !== 'dir') continue;
      for (const name of names) {
        for (const f of varsFilePaths(dir, name)) {
          const vf = await readVarsFile(f, base, problems);
          if (vf) varsFiles[kind].set(name, [...(varsFiles[kind].get(name) ?? []), vf]);
        }
      }
    }
  }

  return {
    file: main,
    baseDir: kindOf(main) === 'dir' ? main : dirname(main),
    inventories,
    varsFiles,
    ...(cfg ? { config: cfg.config, warnings: cfg.warnings } : {}),
    problems,
  };
}

