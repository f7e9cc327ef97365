// Ansible's inventory model and variable precedence, for the hosts kha-deploy reads: groups with
// parents at any depth, and per host the variables in the order Ansible 2.14 combines them
// (VariableManager.get_vars: later wins):
//   ansible.cfg / ANSIBLE_* defaults (not variables in Ansible, but below every variable)
//   < [all:vars] < each group's inventory vars, groups sorted by (depth, ansible_group_priority, name)
//   < group_vars/all < group_vars/GROUP, same order < the host's inventory vars < host_vars/HOST
import type { InventoryProblem } from '../errors.js';
import type { RawInventory, RawVar } from './parse.js';

/** One variable definition with where it came from. */
export interface Val {
  key: string;
  /** The text kha-deploy checks. */
  value: string;
  /** What Ansible sees (undefined = value). */
  typed?: unknown;
  file: string;
  line: number;
  /** How messages name the place: `host line`, `[kube_master:vars]`, `group_vars/all.yml`, `ansible.cfg [defaults]`. */
  scope: string;
  /** Host-level definitions win over group-level ones, and are the "odd one out" when masters disagree. */
  kind: 'host' | 'group' | 'file' | 'config';
}

export interface Group {
  name: string;
  file: string;
  line: number;
  varsLine?: number;
  hosts: string[];
  /** Where each host is listed in this group (its first entry). */
  hostAt: Map<string, { file: string; line: number }>;
  children: string[];
  parents: Set<string>;
  vars: Val[];
}

export interface Host {
  name: string;
  file: string;
  line: number;
  /** Groups that list the host directly, in order of appearance. */
  groups: string[];
  vars: Val[];
}

export interface Model {
  groups: Map<string, Group>;
  hosts: Map<string, Host>;
  problems: (InventoryProblem & { file: string })[];
}

/** A vars file (group_vars/…, host_vars/…) already parsed. */
export interface VarsFile {
  file: string;
  /** As messages name it, e.g. group_vars/all/main.yml. */
  scope: string;
  vars: RawVar[];
}

const isYamlFile = (f: string) => /\.(ya?ml|json)$/i.test(f);

function val(v: RawVar, file: string, scope: string, kind: Val['kind']): Val {
  return { key: v.key, value: v.value, ...(v.typed !== undefined ? { typed: v.typed } : {}), file, line: v.line, scope, kind };
}

export function vals(f: VarsFile): Val[] {
  return f.vars.map((v) => val(v, f.file, f.scope, 'file'));
}

/** Merge parsed inventory files (a directory holds several) into one model, as Ansible's InventoryData does. */
export function buildModel(raws: RawInventory[]): Model {
  const groups = new Map<string, Group>();
  const hosts = new Map<string, Host>();
  const problems: Model['problems'] = [];
  const group = (name: string, file: string, line: number): Group => {
    let g = groups.get(name);
    if (!g) groups.set(name, (g = { name, file, line, hosts: [], hostAt: new Map(), children: [], parents: new Set(), vars: [] }));
    return g;
  };
  group('all', raws[0]?.file ?? '', 0);
  for (const raw of raws) {
    const yaml = isYamlFile(raw.file);
    for (const p of raw.problems) problems.push({ ...p, file: raw.file });
    for (const rg of raw.groups.values()) {
      const g = group(rg.name, raw.file, rg.line);
      if (rg.varsLine !== undefined && g.varsLine === undefined && g.file === raw.file) g.varsLine = rg.varsLine;
      g.vars.push(...rg.vars.map((v) => val(v, raw.file, yaml ? `${rg.name}'s vars` : `[${rg.name}:vars]`, 'group')));
      for (const c of rg.children) {
        const child = group(c.name, raw.file, c.line);
        if (!g.children.includes(c.name)) g.children.push(c.name);
        child.parents.add(g.name);
      }
      for (const rh of rg.hosts) {
        let h = hosts.get(rh.name);
        if (!h) hosts.set(rh.name, (h = { name: rh.name, file: raw.file, line: rh.line, groups: [], vars: [] }));
        if (!g.hosts.includes(rh.name)) g.hosts.push(rh.name), g.hostAt.set(rh.name, { file: raw.file, line: rh.line });
        if (!h.groups.includes(g.name)) h.groups.push(g.name);
        h.vars.push(...rh.vars.map((v) => val(v, raw.file, yaml ? 'host entry' : 'host line', 'host')));
      }
    }
  }
  // A loop through :children would never end in Ansible either ("recursive dependency loop").
  for (const g of groups.values()) {
    const path = ancestorsOf(groups, g.name);
    if (path.has(g.name)) problems.push({ file: g.file, line: g.line, variable: g.name, message: `group ${g.name} is its own ancestor through :children: a loop`, hint: 'remove one of the :children lines that close the loop' });
  }
  return { groups, hosts, problems };
}

function ancestorsOf(groups: Map<string, Group>, name: string): Set<string> {
  const seen = new Set<string>();
  const todo = [...(groups.get(name)?.parents ?? [])];
  while (todo.length) {
    const n = todo.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    todo.push(...(groups.get(n)?.parents ?? []));
  }
  return seen;
}

/** Ansible's group depth: the longest :children path from `all` (every top-level group is at depth 1). */
export function depthOf(groups: Map<string, Group>, name: string, guard = new Set<string>()): number {
  if (name === 'all') return 0;
  const g = groups.get(name);
  if (!g || guard.has(name)) return 1;
  guard.add(name);
  const parents = [...g.parents].filter((p) => p !== 'all');
  const d = parents.length === 0 ? 1 : 1 + Math.max(...parents.map((p) => depthOf(groups, p, guard)));
  guard.delete(name);
  return d;
}

/** ansible_group_priority from the group's inventory vars (default 1): ranks groups of the same depth. */
export function groupPriority(g: Group): number {
  const v = [...g.vars].reverse().find((x) => x.key === 'ansible_group_priority');
  const n = v ? Number(v.typed ?? v.value) : 1;
  return Number.isInteger(n) ? n : 1;
}

/** The host's groups and all their ancestors but `all`, in the order Ansible combines their variables. */
export function hostGroups(m: Model, host: string): string[] {
  const h = m.hosts.get(host);
  if (!h) return [];
  const names = new Set<string>();
  for (const g of h.groups) {
    names.add(g);
    for (const a of ancestorsOf(m.groups, g)) names.add(a);
  }
  names.delete('all');
  const key = (n: string) => ({ n, d: depthOf(m.groups, n), p: groupPriority(m.groups.get(n)!) });
  return [...names]
    .map(key)
    .sort((a, b) => a.d - b.d || a.p - b.p || (a.n < b.n ? -1 : a.n > b.n ? 1 : 0))
    .map((k) => k.n);
}

/** A group's hosts as Ansible lists them: its own first, then its descendants' (breadth first), each once. */
export function groupHosts(m: Model, name: string): string[] {
  return groupEntries(m, name).map((e) => e.name);
}

/** groupHosts with where each host is listed (in the group, or in the descendant it came from). */
export function groupEntries(m: Model, name: string): { name: string; file: string; line: number }[] {
  const out: { name: string; file: string; line: number }[] = [];
  const seenGroups = new Set<string>();
  let level = [name];
  while (level.length) {
    const next: string[] = [];
    for (const n of level) {
      if (seenGroups.has(n)) continue;
      seenGroups.add(n);
      const g = m.groups.get(n);
      if (!g) continue;
      for (const h of g.hosts) if (!out.some((e) => e.name === h)) out.push({ name: h, ...g.hostAt.get(h)! });
      next.push(...g.children);
    }
    level = next;
  }
  return out;
}

export interface VarsFiles {
  /** group name → its group_vars files, in load order. */
  group: Map<string, VarsFile[]>;
  /** host name → its host_vars files, in load order. */
  host: Map<string, VarsFile[]>;
}

/** Every definition that applies to `host`, lowest precedence first (the last one of a key wins). */
export function hostLayers(m: Model, host: string, files: VarsFiles, config: Val[] = []): Val[] {
  const gs = hostGroups(m, host);
  const groupFiles = (g: string) => (files.group.get(g) ?? []).flatMap(vals);
  // ansible_group_priority in the inventory ranks its group; Ansible does not keep it as a variable.
  const inventoryVars = (g: string) => (m.groups.get(g)?.vars ?? []).filter((v) => v.key !== 'ansible_group_priority');
  return [
    ...config,
    ...inventoryVars('all'),
    ...gs.flatMap(inventoryVars),
    ...groupFiles('all'),
    ...gs.flatMap(groupFiles),
    ...(m.hosts.get(host)?.vars ?? []),
    ...(files.host.get(host) ?? []).flatMap(vals),
  ];
}

/** The winning definition of every key. */
export function resolve(layers: Val[]): Map<string, Val> {
  const out = new Map<string, Val>();
  for (const v of layers) out.set(v.key, v);
  return out;
}
