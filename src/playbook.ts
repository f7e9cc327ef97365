// The playbook: the declarative list of what every master gets (steps, managed files, packages,
// gate timings). Small on purpose: the code implements each step id; the YAML orders, names and tunes.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { UsageError } from './errors.js';
import { checkTemplate, templateCheckContexts, tmpfilesContext } from './render.js';
import type { ClusterSpec, PackageKey } from './types.js';

export const STEP_IDS = ['packages', 'rundir', 'haproxy-config', 'keepalived-config', 'units'] as const;
export type StepId = (typeof STEP_IDS)[number];
export const FILE_KEYS = ['haproxy', 'keepalived', 'tmpfiles'] as const;
export type FileKey = (typeof FILE_KEYS)[number];
export const GATE_ROLES = ['primary', 'backup', 'final'] as const;
/** Packages the packages step installs when missing (keepalived's check of the local haproxy runs curl). */
export const PACKAGE_KEYS: readonly PackageKey[] = ['keepalived', 'haproxy', 'curl'];
export type GateRole = (typeof GATE_ROLES)[number];

export interface ManagedFile {
  /** Absolute path on the host. */
  path: string;
  /** The template as the playbook names it (relative to the playbook's directory). */
  template: string;
  templateText: string;
  /** Octal mode string, e.g. "0644". */
  mode: string;
  /** Shell command run on the host against the new file; `{file}` stands for its quoted path. */
  validate?: string;
}

export interface PlaybookStep {
  id: StepId;
  title: string;
  /** Deadline of each remote command of the step; past it the command is ended on the host. */
  timeoutSeconds: number;
}

/** Step deadlines when the playbook gives none: package managers may wait minutes on a lock or a mirror. */
export const DEFAULT_STEP_TIMEOUT_SECONDS: Record<StepId, number> = {
  packages: 600,
  rundir: 30,
  'haproxy-config': 60,
  'keepalived-config': 60,
  units: 120,
};

/** A gate's deadline and polling interval; what it checks is fixed by its role (src/gates/). */
export interface GateSpec {
  timeoutSeconds: number;
  intervalSeconds: number;
}

export interface Playbook {
  /** Where it came from (for messages). */
  file: string;
  name: string;
  /** Package name per managed unit, and curl's. */
  packages: Record<PackageKey, string>;
  /** haproxy's runtime directory (stats socket). */
  runDir: string;
  /** Previous versions kept per managed file. */
  backups: number;
  files: Record<FileKey, ManagedFile>;
  steps: PlaybookStep[];
  gates: Record<GateRole, GateSpec>;
}

const SAMPLE_SPEC: ClusterSpec = {
  file: 'sample',
  group: 'masters',
  vip: '192.0.2.100',
  family: 4,
  vipPort: 8443,
  apiserverPort: 6443,
  virtualRouterId: 51,
  advertInt: 1,
  haproxyBalance: 'roundrobin',
  haproxyHealthCheck: 'readyz',
  haproxyCheckInter: 2,
  haproxyCheckFall: 3,
  haproxyCheckRise: 2,
  haproxyMonitorPort: 8404,
  vrrpPreempt: true,
  vrrpPreemptDelay: 60,
  vrrpCheckWeight: -1,
  kubeconfig: '/etc/kubernetes/admin.conf',
  vrrpAuthPass: 'sample',
  hosts: [{ name: 'm1', address: '192.0.2.11', port: 22, user: 'root', become: false, priority: 150, line: 1 }],
  order: ['m1'],
  primary: 'm1',
  primaryReason: 'sample',
};

/** The directory holding kha-deploy's package.json (works from src/ under tsx and from dist/). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pj = join(dir, 'package.json');
    if (existsSync(pj)) {
      try {
        if ((JSON.parse(readFileSync(pj, 'utf8')) as { name?: unknown }).name === 'kha-deploy') return dir;
      } catch {
        // not ours: keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the kha-deploy package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export function defaultPlaybookPath(): string {
  return join(packageRoot(), 'playbooks', 'master-ha.yml');
}

/** Read and validate a playbook file (default: the packaged playbooks/master-ha.yml). */
export function loadPlaybook(path?: string): Playbook {
  const file = resolve(path ?? defaultPlaybookPath());
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read playbook ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parsePlaybook(text, dirname(file), file);
}

type Obj = Record<string, unknown>;

class Problems {
  constructor(readonly file: string) {}
  fail(where: string, message: string): never {
    throw new UsageError(`playbook ${this.file}: ${where}: ${message}`, {
      hint: 'fix the playbook (the packaged one is playbooks/master-ha.yml) and rerun',
    });
  }
  obj(v: unknown, where: string, keys: { required: string[]; optional?: string[] }): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(where, 'must be a mapping');
    const o = v as Obj;
    for (const k of Object.keys(o)) {
      if (!keys.required.includes(k) && !(keys.optional ?? []).includes(k)) {
        this.fail(where, `unknown key '${k}' (known: ${[...keys.required, ...(keys.optional ?? [])].join(', ')})`);
      }
    }
    for (const k of keys.required) if (!(k in o)) this.fail(where, `'${k}' is missing`);
    return o;
  }
  str(v: unknown, where: string, pattern?: RegExp, what?: string): string {
    if (typeof v !== 'string' || v.trim() === '') this.fail(where, 'must be a non-empty string');
    if (pattern && !pattern.test(v)) this.fail(where, `'${v}' is not ${what}`);
    return v;
  }
  num(v: unknown, where: string, min: number, max: number, integer: boolean): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      this.fail(where, `must be ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
    }
    return v;
  }
  oneOf<T extends string>(v: unknown, where: string, allowed: readonly T[]): T {
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.fail(where, `must be one of ${allowed.join(', ')} (got ${JSON.stringify(v)})`);
    return v as T;
  }
}

const ABS_PATH = /^\/[A-Za-z0-9._/-]+$/;
const PACKAGE = /^[A-Za-z0-9][A-Za-z0-9.+_:~=*-]*$/;

/** Validate a playbook's text and read its templates (relative to `dir`). */
export function parsePlaybook(text: string, dir: string, file = join(dir, 'playbook.yml')): Playbook {
  const p: Problems = new Problems(file);
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true });
  } catch (err) {
    p.fail('YAML', (err as Error).message.split('\n')[0] ?? 'parse error');
  }
  const top = p.obj(doc, 'top level', { required: ['name', 'packages', 'run_dir', 'backups', 'files', 'steps', 'gates'] });

  const pk = p.obj(top.packages, 'packages', { required: [...PACKAGE_KEYS] });
  const packages = {} as Record<PackageKey, string>;
  for (const key of PACKAGE_KEYS) packages[key] = p.str(pk[key], `packages.${key}`, PACKAGE, 'a package name');
  const runDir = p.str(top.run_dir, 'run_dir', ABS_PATH, 'an absolute path').replace(/\/+$/, '');

  const filesObj = p.obj(top.files, 'files', { required: [...FILE_KEYS] });
  const files = {} as Record<FileKey, ManagedFile>;
  for (const key of FILE_KEYS) {
    const where = `files.${key}`;
    const f = p.obj(filesObj[key], where, { required: ['path', 'template', 'mode'], optional: ['validate'] });
    const template = p.str(f.template, `${where}.template`);
    let templateText: string;
    try {
      templateText = readFileSync(resolve(dir, template), 'utf8');
    } catch (err) {
      p.fail(`${where}.template`, `cannot read ${resolve(dir, template)}: ${(err as Error).message}`);
    }
    const mf: ManagedFile = {
      path: p.str(f.path, `${where}.path`, ABS_PATH, 'an absolute path'),
      template,
      templateText,
      mode: p.str(f.mode, `${where}.mode`, /^0?[0-7]{3}$/, 'an octal mode like "0644" (quote it: YAML reads 0644 as a number)'),
    };
    if (f.validate !== undefined) {
      mf.validate = p.str(f.validate, `${where}.validate`);
      if (!mf.validate.includes('{file}')) p.fail(`${where}.validate`, 'must contain {file} (the new file to check)');
    }
    files[key] = mf;
  }

  if (!Array.isArray(top.steps)) p.fail('steps', 'must be a list');
  const steps = (top.steps as unknown[]).map((s, i) => {
    const o = p.obj(s, `steps[${i}]`, { required: ['id', 'title'], optional: ['timeout_seconds'] });
    const id = p.oneOf(o.id, `steps[${i}].id`, STEP_IDS);
    const timeoutSeconds = o.timeout_seconds === undefined ? DEFAULT_STEP_TIMEOUT_SECONDS[id] : p.num(o.timeout_seconds, `steps[${i}].timeout_seconds`, 1, 7200, false);
    return { id, title: p.str(o.title, `steps[${i}].title`), timeoutSeconds };
  });
  const ids = steps.map((s) => s.id);
  for (const id of STEP_IDS) {
    const n = ids.filter((x) => x === id).length;
    if (n !== 1) p.fail('steps', `step '${id}' must appear exactly once (found ${n})`);
  }
  // packages runs first on every master in parallel (it starts no service), before the per-master steps.
  if (ids[0] !== 'packages') p.fail('steps', `'packages' must be the first step (the runner installs on every master at once, before the one-at-a-time steps)`);
  // The validators need the packages; the units need their files and /run/haproxy.
  const at = (id: StepId) => ids.indexOf(id);
  for (const [before, after] of [
    ['packages', 'haproxy-config'],
    ['packages', 'keepalived-config'],
    ['rundir', 'units'],
    ['haproxy-config', 'units'],
    ['keepalived-config', 'units'],
  ] as const) {
    if (at(before) > at(after)) p.fail('steps', `'${before}' must come before '${after}'`);
  }

  const gatesObj = p.obj(top.gates, 'gates', { required: [...GATE_ROLES] });
  const gates = {} as Record<GateRole, GateSpec>;
  for (const role of GATE_ROLES) {
    const where = `gates.${role}`;
    const g = p.obj(gatesObj[role], where, { required: ['timeout_seconds', 'interval_seconds'] });
    const timeoutSeconds = p.num(g.timeout_seconds, `${where}.timeout_seconds`, 1, 3600, false);
    const intervalSeconds = p.num(g.interval_seconds, `${where}.interval_seconds`, 0.1, 600, false);
    if (intervalSeconds > timeoutSeconds) p.fail(where, 'interval_seconds is longer than timeout_seconds');
    gates[role] = { timeoutSeconds, intervalSeconds };
  }

  const playbook: Playbook = {
    file,
    name: p.str(top.name, 'name'),
    packages,
    runDir,
    backups: p.num(top.backups, 'backups', 0, 100, true),
    files,
    steps,
    gates,
  };

  // Unknown placeholders fail now, before any host is touched (also those in skipped blocks).
  const samples = templateCheckContexts(SAMPLE_SPEC, SAMPLE_SPEC.hosts[0]!, playbook);
  const check = (key: FileKey, ctx: ReturnType<typeof tmpfilesContext>) => {
    try {
      checkTemplate(files[key].templateText, ctx, files[key].template);
    } catch (err) {
      p.fail(`files.${key}.template`, (err as Error).message);
    }
  };
  check('haproxy', samples.haproxy);
  check('keepalived', samples.keepalived);
  check('tmpfiles', tmpfilesContext(playbook));
  return playbook;
}

/** The playbook's step with this id (every id is present: parsePlaybook checks). */
export function stepOf(playbook: Playbook, id: StepId): PlaybookStep {
  const s = playbook.steps.find((x) => x.id === id);
  if (!s) throw new Error(`playbook ${playbook.file} has no step '${id}'`);
  return s;
}
