// Raw inventory → ClusterSpec. Collects every problem before throwing, so one run shows them all.
import { homedir } from 'node:os';
import { basename, dirname, join, resolve as resolvePath } from 'node:path';
import { InventoryError, type InventoryProblem, ManyErrors } from '../errors.js';
import type { ClusterSpec, HostSpec } from '../types.js';
import {
  type Bad,
  checkAbsolutePath,
  checkAddress,
  checkAuthPass,
  checkHostName,
  checkInterface,
  checkLocalPath,
  checkUser,
  ipFamily,
  isBad,
  normalizeIP,
  parseBool,
  parseInteger,
  parsePort,
  show,
  specialAddress,
} from './checks.js';
import {
  BALANCE_ALGORITHMS,
  CLUSTER_VARS,
  type ClusterVar,
  DEFAULTS,
  HEALTH_CHECKS,
  KNOWN_VARS,
  type KnownVar,
  LB_GROUPS,
  MASTER_GROUPS,
  canonicalName,
  spellings,
  suggestVariable,
} from './names.js';
import { type Group, type Model, type Val, type VarsFiles, buildModel, groupEntries, groupHosts, hostGroups, hostLayers, resolve } from './model.js';
import type { RawInventory } from './parse.js';
import { MAX_PRIORITY, MIN_PRIORITY, assignPriorities, checkWeight, describePrimary, electionOrder } from './priority.js';

export interface ValidateOptions {
  /** Expands ~/ in ansible_ssh_private_key_file; default os.homedir(). */
  homeDir?: string;
  /** When given, a key file for which it returns false is a problem (loadInventory passes one). */
  fileExists?: (absolutePath: string) => boolean;
}

/** Everything read for one run: the inventory file(s), the vars files beside them, ansible.cfg's defaults. */
export interface InventoryInput {
  /** What -i named (a file or a directory): the file errors are reported against by default. */
  file: string;
  /** Relative key files are relative to this directory (the inventory's). */
  baseDir: string;
  inventories: RawInventory[];
  varsFiles?: VarsFiles;
  /** ansible.cfg / ANSIBLE_* values under our variable names, lowest precedence. */
  config?: Val[];
  /** Problems found while reading (vars files, ansible.cfg). */
  problems?: (InventoryProblem & { file: string })[];
  /** Said once to the operator (e.g. host_key_checking in ansible.cfg is not honoured). */
  warnings?: string[];
}

/** Where a value came from: the key as written (maybe an alias or kubeasz's name), its file, line and section. */
type Source = Val;

/** A problem, with the file it is in when that is not the inventory file itself. */
type Problem = InventoryProblem & { file?: string };

/** A master: its first definition and its resolved variables. */
interface Member {
  host: { name: string; line: number; file: string };
  vars: Map<KnownVar, Source>;
  /** kubeasz's LB_ROLE on this host (master = the primary). */
  lbRole?: Source;
}

class Problems {
  readonly list: Problem[] = [];
  private readonly seen = new Set<string>();
  constructor(private readonly mainFile: string) {}
  /** The same problem reached through several hosts (a shared [all:vars] value) is kept once. */
  add(p: Problem): void {
    const q: Problem = p.file === this.mainFile ? (({ file: _f, ...rest }) => rest)(p) : p;
    const key = JSON.stringify([q.file, q.line, q.variable, q.message]);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push(q);
  }
  bad(src: Source, bad: Bad, prefix = `${src.key} `): void {
    // Ansible keeps `# text` after an unquoted [group:vars] value as part of the value.
    const hint = bad.hint ?? (/\s#/.test(src.value) ? 'a # after an unquoted value in [group:vars] is part of the value for Ansible: quote the value or put the comment on its own line' : undefined);
    this.add({ ...at(src), variable: src.key, message: prefix + bad.bad, ...(hint ? { hint } : {}) });
  }
}

/** file + line of a definition, for a problem. */
function at(s: { file: string; line: number }): { file: string; line: number } {
  return { file: s.file, line: s.line };
}

const KEEPALIVED_VARS: readonly string[] = ['vip', 'virtual_router_id', 'advert_int', 'vrrp_auth_pass', 'vrrp_unicast'];

function sameEverywhereReason(key: ClusterVar): string {
  if (KEEPALIVED_VARS.includes(key)) return "keepalived instances that disagree produce 'bogus VRRP packet'";
  if (key === 'vrrp_preempt' || key === 'vrrp_preempt_delay') return 'every master must follow the same rule for taking the VIP back, or the VIP can move back and forth';
  if (key === 'kubeconfig') return 'it is one setting for the whole cluster';
  return "every master's haproxy must serve the VIP the same way";
}

/** Exactly one of masters / kube_master / kube-master / kube_control_plane. */
function selectGroup(m: Model, P: Problems): Group | undefined {
  const present = MASTER_GROUPS.map((n) => m.groups.get(n)).filter((g): g is Group => g !== undefined);
  const [first, second] = present;
  if (first && second) {
    P.add({
      file: second.file,
      line: second.line,
      variable: second.name,
      message: `both [${first.name}] (${lineRef(first, second.file)}) and [${second.name}] (${lineRef(second, second.file)}) are present: kha-deploy reads the masters from exactly one of [masters], [kube_master], [kube-master], [kube_control_plane]`,
      hint: 'keep one of these groups and move its hosts and variables there',
    });
    return undefined;
  }
  if (first) return first;
  const others = [...m.groups.keys()].filter((n) => n !== 'ungrouped' && n !== 'all');
  P.add({
    variable: 'masters',
    message:
      'no masters group: expected [masters], [kube_master], [kube-master] or [kube_control_plane]' +
      (others.length ? ` (found ${others.map((o) => `[${o}]`).join(', ')})` : ''),
    hint: 'list the control-plane hosts under [masters], one per line',
  });
  return undefined;
}

/** `line N` in the same file, `FILE:N` elsewhere. */
function lineRef(s: { file: string; line: number }, from: string): string {
  return s.file === from ? `line ${s.line}` : `${basename(dirname(s.file))}/${basename(s.file)}:${s.line}`;
}

/**
 * kubeasz's [lb] / [ex-lb] / [ex_lb]: the hosts that get keepalived+haproxy. kha-deploy installs them on
 * the masters (each haproxy forwards to every master's apiserver, on the same hosts), so when the group
 * is present and not empty it must list exactly the masters.
 */
function checkLbGroup(m: Model, masters: Group, names: string[], P: Problems): void {
  const lbs = LB_GROUPS.map((n) => m.groups.get(n)).filter((g): g is Group => g !== undefined && groupHosts(m, g.name).length > 0);
  if (lbs.length > 1) {
    P.add({ file: lbs[1]!.file, line: lbs[1]!.line, variable: lbs[1]!.name, message: `both [${lbs[0]!.name}] and [${lbs[1]!.name}] list hosts: kubeasz uses one load-balancer group`, hint: 'keep one of them' });
    return;
  }
  const lb = lbs[0];
  if (!lb) return;
  const lbHosts = groupHosts(m, lb.name);
  const extra = lbHosts.filter((h) => !names.includes(h));
  const missing = names.filter((h) => !lbHosts.includes(h));
  if (extra.length === 0 && missing.length === 0) return;
  const parts = [
    ...(extra.length ? [`[${lb.name}] lists ${extra.join(', ')}, not in [${masters.name}]`] : []),
    ...(missing.length ? [`[${masters.name}] lists ${missing.join(', ')}, not in [${lb.name}]`] : []),
  ];
  P.add({
    file: lb.file,
    line: lb.line,
    variable: lb.name,
    message: `${parts.join('; ')}: kha-deploy installs keepalived and haproxy on the masters themselves (each haproxy forwards to every master's apiserver), so [${lb.name}] must list exactly the masters; separate load-balancer hosts are not supported`,
    hint: `list the same hosts in [${lb.name}] and [${masters.name}], or leave [${lb.name}] empty and set vip under [${masters.name}:vars]`,
  });
}

/** Same host line(s) or one vars section defining one of our keys twice with different values. */
function checkRepeats(defs: Val[], who: string, P: Problems): void {
  const byKey = new Map<string, Val[]>();
  for (const v of defs) {
    if (!canonicalName(v.key) && v.key !== 'LB_ROLE' && v.key !== 'KUBE_APISERVER') continue;
    const k = `${v.key}\0${v.kind === 'host' ? '' : `${v.file}\0${v.scope}`}`;
    byKey.set(k, [...(byKey.get(k) ?? []), v]);
  }
  for (const list of byKey.values()) {
    if (new Set(list.map((d) => d.value)).size < 2) continue;
    const last = list[list.length - 1]!;
    P.add({
      ...at(last),
      variable: last.key,
      message: `${last.key} set more than once ${last.kind === 'host' ? `for host ${who}` : `in ${last.scope}`} with different values (${list.map((d) => lineRef(d, last.file).replace('line ', '')).join(', ').replace(/^/, 'lines ')})`,
      hint: 'keep one definition',
    });
  }
}

const JINJA = /\{\{|\{%|\{#/;

/** Expand `{{ NAME }}` references from the host's variables; anything else Jinja is a problem. */
function expand(src: Source, all: Map<string, Val>, P: Problems, depth = 0): Source | undefined {
  if (!JINJA.test(src.value)) return src;
  let missing: string | undefined;
  let failed = false;
  const value = src.value.replace(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, name: string) => {
    const ref = all.get(name);
    if (!ref) return (missing ??= name), '';
    const e = depth < 10 ? expand(ref, all, P, depth + 1) : undefined;
    if (!e) return (failed = true), '';
    return e.value;
  });
  if (failed) return undefined;
  if (missing) {
    P.add({ ...at(src), variable: src.key, message: `${src.key} refers to {{ ${missing} }}, which is not set for this host`, hint: `set ${missing}, or write the value itself` });
    return undefined;
  }
  if (JINJA.test(value)) {
    P.add({
      ...at(src),
      variable: src.key,
      message: `${src.key} is a Jinja template kha-deploy cannot expand (${show(src.value)}): only plain {{ VARIABLE }} references are expanded`,
      hint: 'write the value itself',
    });
    return undefined;
  }
  return { ...src, value, typed: value };
}

/** kubeasz's KUBE_APISERVER="https://{{ MASTER_IP }}:8443": its port, as a vip_port definition. */
function apiserverUrlPort(src: Source, P: Problems): Source | undefined {
  const m = /^https?:\/\/(\[[^\]]+\]|[^/:]+)(?::([0-9]+))?\/?$/.exec(src.value);
  if (!m) {
    P.add({ ...at(src), variable: src.key, message: `KUBE_APISERVER ${show(src.value)} is not a URL like https://VIP:8443`, hint: 'kha-deploy reads vip_port from its port' });
    return undefined;
  }
  return { ...src, value: m[2] ?? '443', typed: undefined };
}

/** Our variables for one master, with every spelling (Ansible's aliases, kubeasz's names) compared. */
function resolveOurs(all: Map<string, Val>, P: Problems): { vars: Map<KnownVar, Source>; lbRole?: Source } {
  const out = new Map<KnownVar, Source>();
  for (const name of KNOWN_VARS) {
    const found: Source[] = [];
    for (const key of spellings(name)) {
      const v = all.get(key);
      if (!v || v.typed === null) continue; // null (YAML `key:`, INI None) leaves the default, as in Ansible
      const e = expand(v, all, P);
      if (e) found.push(e);
    }
    if (name === 'vip_port') {
      const url = all.get('KUBE_APISERVER');
      const e = url && url.typed !== null ? expand(url, all, P) : undefined;
      const port = e && apiserverUrlPort(e, P);
      if (port) found.push(port);
    }
    const [first, ...rest] = found;
    if (!first) continue;
    for (const other of rest) {
      if (other.value === first.value) continue;
      P.add({
        ...at(other),
        variable: other.key,
        message: `${first.key}=${show(first.value)} (${lineRef(first, other.file)}) and ${other.key}=${show(other.value)} (${lineRef(other, other.file)}) disagree: kha-deploy reads both as ${name}`,
        hint: `remove one of them, or make them equal`,
      });
    }
    out.set(name, first);
  }
  const role = all.get('LB_ROLE');
  return { vars: out, ...(role && role.typed !== null ? { lbRole: role } : {}) };
}

/** Variables one typo away from ours, in every place the masters read. */
function checkTypos(defs: Val[], P: Problems): void {
  for (const v of defs) {
    if (v.kind === 'config') continue;
    const near = suggestVariable(v.key);
    if (near.length === 0) continue;
    const alt = near.join(' or ');
    P.add({ ...at(v), variable: v.key, message: `unknown variable ${v.key}: did you mean ${alt}?`, hint: `rename it to ${near[0]}` });
  }
}

/** Cluster-wide values: identical on every master; returns the source to use (or undefined = default). */
function clusterValue(key: ClusterVar, members: Member[], P: Problems): Source | undefined {
  const values = members.map((m) => m.vars.get(key));
  const text = (s: Source | undefined) => (s ? `=${s.value}` : 'default');
  // Reference: the most common value; on a tie the one not from a host line (the override is the odd one).
  const score = new Map<string, number>();
  for (const s of values) score.set(text(s), (score.get(text(s)) ?? (s?.kind === 'host' ? 0 : 1)) + 2);
  if (score.size <= 1) return values[0];
  const ref = [...score].reduce((a, b) => (b[1] > a[1] ? b : a))[0];
  const refIndex = values.findIndex((s) => text(s) === ref);
  const refName = members[refIndex]!.host.name;
  const secret = key === 'vrrp_auth_pass';
  const describe = (s: Source | undefined) =>
    s ? show(s.value) : key in DEFAULTS ? `the default ${DEFAULTS[key as keyof typeof DEFAULTS]}` : 'none';
  members.forEach((m, i) => {
    const s = values[i];
    if (text(s) === ref) return;
    const detail = secret ? `${m.host.name}'s value differs from ${refName}'s; values hidden` : `${m.host.name} has ${describe(s)}, ${refName} has ${describe(values[refIndex])}`;
    P.add({
      ...at(s ?? m.host),
      variable: key,
      message: `${key} must be identical on all masters: ${sameEverywhereReason(key)} (${detail})`,
      hint: `set ${key} once under [masters:vars] instead of on host lines`,
    });
  });
  return values[refIndex];
}

function intVar(src: Source | undefined, fallback: number, min: number, max: number, P: Problems): number {
  if (!src) return fallback;
  const n = parseInteger(src.value, min, max);
  if (isBad(n)) return P.bad(src, n), fallback;
  return n;
}

const badOf = (x: unknown): Bad | undefined => (isBad(x) ? x : undefined);

/** The check of each cluster-wide value; Bad messages are prefixed with the variable name. */
const CLUSTER_CHECKS: Record<ClusterVar, (value: string) => Bad | undefined> = {
  vip: (v) => {
    if (!ipFamily(v)) return { bad: `${show(v)} is not a valid IP address (IPv4 as four numbers 0-255 without leading zeros, or IPv6)` };
    const special = specialAddress(v);
    return special ? { bad: `${v} is ${special}: the VIP must be a free address in the masters' subnet` } : undefined;
  },
  vip_port: (v) => badOf(parsePort(v)),
  apiserver_port: (v) => badOf(parsePort(v)),
  virtual_router_id: (v) => badOf(parseInteger(v, 1, 255)),
  advert_int: (v) => badOf(parseInteger(v, 1, 255)),
  haproxy_balance: (v) =>
    (BALANCE_ALGORITHMS as readonly string[]).includes(v) ? undefined : { bad: `must be one of ${BALANCE_ALGORITHMS.join(', ')}, got ${show(v)}` },
  haproxy_health_check: (v) =>
    (HEALTH_CHECKS as readonly string[]).includes(v)
      ? undefined
      : { bad: `must be readyz (GET /readyz over TLS) or tcp (a TCP connect only), got ${show(v)}` },
  haproxy_check_inter: (v) => seconds(v, 1, 3600, 2),
  haproxy_check_fall: (v) => badOf(parseInteger(v, 1, 100)),
  haproxy_check_rise: (v) => badOf(parseInteger(v, 1, 100)),
  haproxy_monitor_port: (v) => badOf(parsePort(v)),
  kubeconfig: checkAbsolutePath,
  vrrp_auth_pass: checkAuthPass,
  vrrp_preempt: (v) => badOf(parseBool(v)),
  vrrp_unicast: (v) => badOf(parseBool(v)),
  vrrp_preempt_delay: (v) => seconds(v, 0, 1000, 60),
};

/** A whole number of seconds; `2s` gets a hint instead of a bare refusal. */
function seconds(v: string, min: number, max: number, example: number): Bad | undefined {
  const bad = badOf(parseInteger(v, min, max));
  if (bad && /^[0-9]+s$/.test(v)) return { bad: bad.bad, hint: `write the number of seconds without a unit, e.g. ${example}` };
  return bad;
}

/** Refuse with every problem: one InventoryError per file that has some (the inventory's own first). */
function refuse(mainFile: string, problems: Problem[]): never {
  const byFile = new Map<string, InventoryProblem[]>([[mainFile, []]]);
  for (const { file, ...p } of problems) byFile.set(file ?? mainFile, [...(byFile.get(file ?? mainFile) ?? []), p]);
  const errors = [...byFile]
    .filter(([, list]) => list.length > 0)
    .map(([file, list]) => new InventoryError(file, list.sort((a, b) => (a.line ?? 0) - (b.line ?? 0))));
  if (errors.length === 1) throw errors[0]!;
  throw new ManyErrors(errors, `the inventory has problems in ${errors.length} files (no host was contacted)`);
}

/** Validate one INI inventory text already parsed (no vars files): the unit tests' entry point. */
export function validateInventory(raw: RawInventory, opts: ValidateOptions = {}): ClusterSpec {
  return validateSources({ file: raw.file, baseDir: dirname(raw.file), inventories: [raw] }, opts);
}

export function validateSources(input: InventoryInput, opts: ValidateOptions = {}): ClusterSpec {
  const P = new Problems(input.file);
  const model = buildModel(input.inventories);
  for (const p of [...model.problems, ...(input.problems ?? [])]) P.add(p);
  const fail = (): never => refuse(input.file, P.list);
  const files: VarsFiles = input.varsFiles ?? { group: new Map(), host: new Map() };

  const group = selectGroup(model, P);
  if (!group) return fail();
  const entries = groupEntries(model, group.name);
  const names = entries.map((e) => e.name);
  if (names.length === 0) {
    P.add({
      file: group.file,
      line: group.line,
      variable: group.name,
      message: `[${group.name}] has no hosts: kha-deploy needs at least one master`,
      hint: `list the control-plane hosts under [${group.name}], one per line`,
    });
    return fail();
  }
  checkLbGroup(model, group, names, P);

  const members: Member[] = entries.map(({ name, file, line }) => {
    const h = model.hosts.get(name)!;
    const layers = hostLayers(model, name, files, input.config);
    checkTypos(layers, P);
    checkRepeats(h.vars, name, P);
    for (const g of hostGroups(model, name)) checkRepeats(model.groups.get(g)!.vars, name, P);
    const { vars, lbRole } = resolveOurs(resolve(layers), P);
    return { host: { name, line, file }, vars, ...(lbRole ? { lbRole } : {}) };
  });
  if (P.list.length > 0 && members.every((m) => m.vars.size === 0)) return fail();

  // Cluster-wide HA values: every distinct value is checked, the agreed one (or the default) is used.
  const cv = {} as Record<ClusterVar, Source | undefined>;
  for (const key of CLUSTER_VARS) {
    cv[key] = clusterValue(key, members, P);
    const distinct = new Map(members.map((m) => m.vars.get(key)).filter((s): s is Source => !!s).map((s) => [`${s.file}:${s.line}`, s]));
    for (const src of distinct.values()) {
      const bad = CLUSTER_CHECKS[key](src.value);
      if (bad) P.bad(src, bad);
      if (bad && src === cv[key]) cv[key] = undefined;
    }
  }
  const vip = cv.vip?.value ?? '';
  const family = ipFamily(vip);
  if (!cv.vip && !members.some((m) => m.vars.has('vip'))) {
    const elsewhere = [...model.groups.values()].flatMap((g) => g.vars.filter((v) => v.key === 'vip').map((v) => ({ g, v })))[0];
    P.add({
      file: group.file,
      line: group.varsLine ?? group.line,
      variable: 'vip',
      message: 'vip is not set: kha-deploy needs the virtual IP address the masters share',
      hint: elsewhere
        ? `vip is set in [${elsewhere.g.name}:vars] (${lineRef(elsewhere.v, group.file)}), which applies to no master: move it to [${group.name}:vars] or [all:vars]`
        : `set vip=<a free address in the masters' subnet> under [${group.name}:vars] (kubeasz: MASTER_IP in [all:vars], or EX_APISERVER_VIP on the [ex_lb] host lines)`,
    });
  }
  const int = (src: Source | undefined, fallback: number) => (src ? Number(src.value) : fallback);
  const vipPort = int(cv.vip_port, DEFAULTS.vip_port);
  const apiserverPort = int(cv.apiserver_port, DEFAULTS.apiserver_port);
  if (vipPort === apiserverPort) {
    const src = cv.vip_port ?? cv.apiserver_port!;
    P.add({
      ...at(src),
      variable: src.key,
      message: `vip_port and apiserver_port are both ${vipPort}: haproxy listens on vip_port on every master, where the apiserver already owns apiserver_port`,
      hint: cv.vip_port ? 'use another vip_port, e.g. 8443 (the convention)' : 'set vip_port to a free port other than apiserver_port',
    });
  }
  const virtualRouterId = int(cv.virtual_router_id, DEFAULTS.virtual_router_id);
  const advertInt = int(cv.advert_int, DEFAULTS.advert_int);
  const haproxyBalance = cv.haproxy_balance?.value ?? DEFAULTS.haproxy_balance;
  const haproxyHealthCheck = (cv.haproxy_health_check?.value ?? DEFAULTS.haproxy_health_check) as ClusterSpec['haproxyHealthCheck'];
  const haproxyCheckInter = int(cv.haproxy_check_inter, DEFAULTS.haproxy_check_inter);
  const haproxyCheckFall = int(cv.haproxy_check_fall, DEFAULTS.haproxy_check_fall);
  const haproxyCheckRise = int(cv.haproxy_check_rise, DEFAULTS.haproxy_check_rise);
  const haproxyMonitorPort = int(cv.haproxy_monitor_port, DEFAULTS.haproxy_monitor_port);
  for (const [other, port] of [['vip_port', vipPort], ['apiserver_port', apiserverPort]] as const) {
    if (haproxyMonitorPort !== port) continue;
    const src = cv.haproxy_monitor_port ?? cv[other]!;
    P.add({
      ...at(src),
      variable: src.key,
      message: `haproxy_monitor_port and ${other} are both ${port}: haproxy's monitor (127.0.0.1:${haproxyMonitorPort}) needs a port of its own on every master`,
      hint: cv.haproxy_monitor_port ? `choose another haproxy_monitor_port, e.g. ${DEFAULTS.haproxy_monitor_port === port ? 8405 : DEFAULTS.haproxy_monitor_port}` : `set haproxy_monitor_port to a free port other than ${other}`,
    });
  }
  const kubeconfig = cv.kubeconfig?.value ?? DEFAULTS.kubeconfig;
  const vrrpAuthPass = cv.vrrp_auth_pass?.value;
  const preemptBool = cv.vrrp_preempt ? parseBool(cv.vrrp_preempt.value) : DEFAULTS.vrrp_preempt;
  const vrrpPreempt = isBad(preemptBool) ? DEFAULTS.vrrp_preempt : preemptBool;
  const vrrpPreemptDelay = int(cv.vrrp_preempt_delay, DEFAULTS.vrrp_preempt_delay);
  const unicastBool = cv.vrrp_unicast ? parseBool(cv.vrrp_unicast.value) : DEFAULTS.vrrp_unicast;
  const vrrpUnicast = isBad(unicastBool) ? DEFAULTS.vrrp_unicast : unicastBool;
  if (!vrrpPreempt && cv.vrrp_preempt_delay) {
    // keepalived drops preempt_delay under nopreempt ("incompatible"): say so instead of writing a setting that does nothing.
    P.add({
      ...at(cv.vrrp_preempt_delay),
      variable: cv.vrrp_preempt_delay.key,
      message: `vrrp_preempt_delay=${cv.vrrp_preempt_delay.value} cannot be combined with vrrp_preempt=${cv.vrrp_preempt!.value} (${lineRef(cv.vrrp_preempt!, cv.vrrp_preempt_delay.file)}): without preemption a returning master never takes the VIP back, so there is nothing to delay`,
      hint: 'remove one: vrrp_preempt=false (the VIP stays where it is after a failover) or vrrp_preempt_delay=SECONDS (the primary takes it back after that delay)',
    });
  }
  if (vrrpAuthPass !== undefined && family === 6) {
    // An IPv6 VIP makes keepalived speak VRRPv3, which has no authentication: it refuses the config.
    P.add({
      ...at(cv.vrrp_auth_pass!),
      variable: 'vrrp_auth_pass',
      message: 'vrrp_auth_pass cannot be used with an IPv6 VIP: keepalived uses VRRPv3 for IPv6, which has no authentication',
      hint: 'remove vrrp_auth_pass (value hidden), or use an IPv4 VIP',
    });
  }

  // Per-host values.
  const home = opts.homeDir ?? homedir();
  const endpoints = new Map<string, string>();
  const explicit: (number | undefined)[] = [];
  const hosts: Omit<HostSpec, 'priority'>[] = members.map(({ host, vars }) => {
    const nameBad = checkHostName(host.name);
    if (nameBad) P.add({ ...at(host), variable: host.name, message: nameBad.bad, ...(nameBad.hint ? { hint: nameBad.hint } : {}) });

    const addrSrc = vars.get('ansible_host');
    const address = addrSrc?.value ?? host.name;
    let addrFamily: 0 | 4 | 6 = nameBad ? 0 : ipFamily(address);
    if (addrSrc) {
      const a = checkAddress(address);
      if (isBad(a)) P.bad(addrSrc, a);
      addrFamily = isBad(a) ? 0 : a.family;
    }
    const where = { ...at(addrSrc ?? host), variable: addrSrc?.key ?? host.name };
    if (family && addrFamily && addrFamily !== family)
      P.add({
        ...where,
        message: `${host.name}'s address ${address} is IPv${addrFamily} but the VIP ${vip} is IPv${family}: the VIP and the masters must use the same IP family`,
      });
    if (family && addrFamily && normalizeIP(address) === normalizeIP(vip))
      P.add({
        ...at(cv.vip!),
        variable: 'vip',
        message: `vip ${vip} is also the address of ${host.name}: the VIP must be a free address, not a master's own`,
        hint: "choose an unused address in the masters' subnet",
      });

    const port = intVar(vars.get('ansible_port'), DEFAULTS.ansible_port, 1, 65535, P);
    const endpoint = `${addrFamily ? normalizeIP(address) : address.toLowerCase()} port ${port}`;
    const twin = endpoints.get(endpoint);
    if (twin) P.add({ ...where, message: `${host.name} has the same address and SSH port as ${twin} (${endpoint})`, hint: 'each master needs its own ansible_host' });
    else endpoints.set(endpoint, host.name);

    const userSrc = vars.get('ansible_user');
    const user = userSrc?.value ?? DEFAULTS.ansible_user;
    const userBad = userSrc && checkUser(user);
    if (userSrc && userBad) P.bad(userSrc, userBad);
    const becomeSrc = vars.get('ansible_become');
    let become: boolean = DEFAULTS.ansible_become;
    if (becomeSrc) {
      const b = parseBool(becomeSrc.value);
      if (isBad(b)) P.bad(becomeSrc, b);
      else become = b;
    }
    if (userSrc && !userBad && user !== 'root' && !become && !(becomeSrc && isBad(parseBool(becomeSrc.value))))
      P.add({
        ...at(userSrc),
        variable: userSrc.key,
        message: `ansible_user ${user} is not root and ansible_become is not true: installing packages and writing /etc needs root`,
        hint: 'set ansible_become=true (every command then runs through sudo -n) or use ansible_user=root',
      });
    const becomeUser = vars.get('ansible_become_user');
    if (become && becomeUser && becomeUser.value !== 'root')
      P.bad(becomeUser, { bad: `must be root (or unset), got ${show(becomeUser.value)}: kha-deploy becomes root to install packages` });
    const becomeMethod = vars.get('ansible_become_method');
    if (become && becomeMethod && becomeMethod.value !== 'sudo')
      P.bad(becomeMethod, { bad: `${show(becomeMethod.value)} is not supported: kha-deploy becomes root with sudo -n only` });

    const keySrc = vars.get('ansible_ssh_private_key_file');
    let privateKeyFile: string | undefined;
    if (keySrc) {
      const keyBad = checkLocalPath(keySrc.value);
      if (keyBad) P.bad(keySrc, keyBad);
      else {
        const v = keySrc.value;
        privateKeyFile = v.startsWith('~/') ? join(home, v.slice(2)) : resolvePath(keySrc.kind === 'config' ? dirname(keySrc.file) : input.baseDir, v);
        if (opts.fileExists && !opts.fileExists(privateKeyFile))
          P.bad(keySrc, {
            bad: `${show(v)} does not exist (looked for ${privateKeyFile})`,
            hint: "a relative path is relative to the inventory file's directory",
          });
      }
    }

    const prioSrc = vars.get('priority');
    explicit.push(prioSrc ? intVar(prioSrc, -1, MIN_PRIORITY, MAX_PRIORITY, P) : undefined);

    const argsSrc = vars.get('ansible_ssh_common_args');

    const ifSrc = vars.get('vip_interface');
    const ifBad = ifSrc && checkInterface(ifSrc.value);
    if (ifSrc && ifBad) P.bad(ifSrc, ifBad);

    return {
      name: host.name,
      address,
      port,
      user,
      ...(privateKeyFile ? { privateKeyFile } : {}),
      become,
      ...(ifSrc ? { vipInterface: ifSrc.value } : {}),
      ...(argsSrc ? { sshCommonArgs: argsSrc.value } : {}),
      // Set anywhere (host, group, group_vars, ansible.cfg) wins over ~/.ssh/config, as Ansible's -o options do.
      sshExplicit: { address: addrSrc !== undefined, port: vars.get('ansible_port') !== undefined, user: userSrc !== undefined },
      line: host.line,
      ...(host.file !== input.file ? { file: host.file } : {}),
    };
  });

  // Explicit priorities must differ: keepalived elects by them.
  const byPriority = new Map<number, number[]>();
  explicit.forEach((p, i) => p !== undefined && p >= MIN_PRIORITY && byPriority.set(p, [...(byPriority.get(p) ?? []), i]));
  for (const [p, idx] of byPriority) {
    const [firstIdx, ...dups] = idx as [number, ...number[]];
    for (const i of dups) {
      const src = members[i]!.vars.get('priority')!;
      const shared = src.line === members[firstIdx]!.vars.get('priority')!.line;
      P.add({
        ...at(src),
        variable: 'priority',
        message: shared
          ? `priority ${p} is set in ${src.scope} (${lineRef(src, src.file)}), so every master gets it: keepalived needs a different priority on each master`
          : `priority ${p} is used by both ${members[firstIdx]!.host.name} and ${members[i]!.host.name}: keepalived needs a different priority on each master`,
        hint: shared ? 'set priority on each host line instead' : `set a different priority on ${members[i]!.host.name}`,
      });
    }
  }
  if (members.length > MAX_PRIORITY)
    P.add({ ...at(group), variable: group.name, message: `${members.length} masters: VRRP has only ${MAX_PRIORITY} priorities` });

  // kubeasz's LB_ROLE=master|backup: exactly one master, which becomes the primary.
  const roles = members.map((m) => m.lbRole);
  let lbPrimary: number | undefined;
  const firstRole = roles.find((r) => r !== undefined);
  if (firstRole) {
    for (const r of roles) if (r && !['master', 'backup'].includes(r.value.toLowerCase())) P.bad(r, { bad: `must be master or backup, got ${show(r.value)}` });
    const masterIdx = roles.flatMap((r, i) => (r?.value.toLowerCase() === 'master' ? [i] : []));
    if (masterIdx.length === 1) lbPrimary = masterIdx[0];
    else
      P.add({
        ...at(masterIdx.length ? roles[masterIdx[1]!]! : firstRole),
        variable: 'LB_ROLE',
        message: masterIdx.length
          ? `LB_ROLE=master is set on ${masterIdx.map((i) => members[i]!.host.name).join(' and ')}: one master is the primary (the others are LB_ROLE=backup)`
          : `LB_ROLE is set but no master has LB_ROLE=master: kubeasz's LB_ROLE=master names the primary`,
        hint: 'set LB_ROLE=master on exactly one host',
      });
  }

  if (P.list.length > 0 || family === 0) return fail(); // family is 0 only when vip was refused

  let priorities = assignPriorities(explicit);
  let lbNote = '';
  if (lbPrimary !== undefined) {
    const roleSrc = roles[lbPrimary]!;
    const pname = members[lbPrimary]!.host.name;
    if (explicit.every((p) => p === undefined)) {
      // The LB_ROLE=master host takes the first default (150), the backups the next ones in inventory order.
      const rank = [lbPrimary, ...members.map((_, i) => i).filter((i) => i !== lbPrimary)];
      const defaults = assignPriorities(members.map(() => undefined));
      priorities = members.map((_, i) => defaults[rank.indexOf(i)]!);
      lbNote = ` ${pname} has LB_ROLE=master (kubeasz, ${lineRef(roleSrc, input.file)}): it gets 150, the other masters 140, 130, … in inventory order.`;
    } else {
      const top = Math.max(...priorities);
      const topIdx = priorities.indexOf(top);
      if (priorities[lbPrimary] !== top) {
        const prio = members[topIdx]!.vars.get('priority');
        P.add({
          ...at(roleSrc),
          variable: 'LB_ROLE',
          message: `LB_ROLE=master is on ${pname} (${lineRef(roleSrc, input.file)}) but ${members[topIdx]!.host.name} has the highest priority (${top}${prio ? `, ${lineRef(prio, input.file)}` : ', a default'}): kha-deploy's primary is the highest priority`,
          hint: `give ${pname} the highest priority, or move LB_ROLE=master to ${members[topIdx]!.host.name}`,
        });
        return fail();
      }
    }
  }
  const full: HostSpec[] = hosts.map((h, i) => ({ ...h, priority: priorities[i]! }));
  const weight = checkWeight(full);
  for (const low of weight.tooLow) {
    const i = full.indexOf(low.host);
    const src = members[i]!.vars.get('priority');
    const top = weight.highest;
    P.add({
      ...at(src ?? members[i]!.host),
      variable: 'priority',
      message:
        `${low.host.name}'s priority ${low.host.priority}${src ? '' : ' (a default)'} is too far below ${top.name}'s ${top.priority}: a master whose local ` +
        `load balancer check fails loses ${-weight.weight} (highest minus lowest priority, plus 1, so that a failed primary falls below every healthy ` +
        `backup), which leaves ${low.host.name} at ${low.failed}; keepalived needs at least ${MIN_PRIORITY}`,
      hint: `keep the priorities closer together: the highest may be at most twice the lowest minus 2 (here: ${low.host.name} at least ${Math.ceil((top.priority + 2) / 2)}, or ${top.name} at most ${2 * low.host.priority - 2}); e.g. 150, 140, 130`,
    });
  }
  if (P.list.length > 0) return fail();
  const order = electionOrder(full);
  const defaulted = lbNote ? [] : full.filter((_, i) => explicit[i] === undefined).map((h) => h.name);
  return {
    file: input.file,
    group: group.name,
    vip,
    family,
    vipPort,
    apiserverPort,
    virtualRouterId,
    advertInt,
    haproxyBalance,
    haproxyHealthCheck,
    haproxyCheckInter,
    haproxyCheckFall,
    haproxyCheckRise,
    haproxyMonitorPort,
    vrrpPreempt,
    vrrpPreemptDelay,
    ...(vrrpUnicast ? { vrrpUnicast } : {}),
    vrrpCheckWeight: weight.weight,
    kubeconfig,
    ...(vrrpAuthPass !== undefined ? { vrrpAuthPass } : {}),
    hosts: full,
    order,
    primary: order[0]!,
    primaryReason: describePrimary(full, defaulted) + lbNote,
    ...(input.warnings?.length ? { warnings: input.warnings } : {}),
  };
}
