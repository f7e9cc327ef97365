// Raw inventory → ClusterSpec. Collects every problem before throwing, so one run shows them all.
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { InventoryError, type InventoryProblem } from '../errors.js';
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
  type KnownVar,
  MASTER_GROUPS,
  canonicalName,
  suggestVariable,
} from './names.js';
import type { RawGroup, RawHost, RawInventory, RawVar } from './parse.js';
import { MAX_PRIORITY, MIN_PRIORITY, assignPriorities, checkWeight, describePrimary, electionOrder } from './priority.js';

export interface ValidateOptions {
  /** Expands ~/ in ansible_ssh_private_key_file; default os.homedir(). */
  homeDir?: string;
  /** When given, a key file for which it returns false is a problem (loadInventory passes one). */
  fileExists?: (absolutePath: string) => boolean;
}

/** Where a value came from: the key as written (maybe an alias), its line and its section. */
interface Source {
  key: string;
  value: string;
  line: number;
  scope: string;
}

/** A master: its host line in the masters group (or a child group) and its resolved variables. */
interface Member {
  host: RawHost;
  via?: RawGroup;
  vars: Map<KnownVar, Source>;
}

class Problems {
  readonly list: InventoryProblem[] = [];
  private readonly seen = new Set<string>();
  /** The same problem reached through several hosts (a shared [all:vars] value) is kept once. */
  add(p: InventoryProblem): void {
    const key = JSON.stringify([p.line, p.variable, p.message]);
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push(p);
  }
  bad(src: Source, bad: Bad, prefix = `${src.key} `): void {
    this.add({ line: src.line, variable: src.key, message: prefix + bad.bad, ...(bad.hint ? { hint: bad.hint } : {}) });
  }
}

const KEEPALIVED_VARS: readonly string[] = ['vip', 'virtual_router_id', 'advert_int', 'vrrp_auth_pass'];

function sameEverywhereReason(key: ClusterVar): string {
  if (KEEPALIVED_VARS.includes(key)) return "keepalived instances that disagree produce 'bogus VRRP packet'";
  if (key === 'vrrp_preempt' || key === 'vrrp_preempt_delay') return 'every master must follow the same rule for taking the VIP back, or the VIP can move back and forth';
  if (key === 'kubeconfig') return 'it is one setting for the whole cluster';
  return "every master's haproxy must serve the VIP the same way";
}

/** Exactly one of masters / kube_master / kube_control_plane. */
function selectGroup(raw: RawInventory, P: Problems): RawGroup | undefined {
  const present = MASTER_GROUPS.map((n) => raw.groups.get(n)).filter((g): g is RawGroup => g !== undefined);
  const [first, second] = present;
  if (first && second) {
    P.add({
      line: second.line,
      variable: second.name,
      message: `both [${first.name}] (line ${first.line}) and [${second.name}] (line ${second.line}) are present: kha-deploy reads the masters from exactly one of [masters], [kube_master], [kube_control_plane]`,
      hint: 'keep one of these groups and move its hosts and variables there',
    });
    return undefined;
  }
  if (first) return first;
  const others = [...raw.groups.keys()].filter((n) => n !== 'ungrouped' && n !== 'all');
  const legacy = raw.groups.get('kube-master');
  P.add({
    ...(legacy ? { line: legacy.line } : {}),
    variable: 'masters',
    message:
      'no masters group: expected [masters], [kube_master] or [kube_control_plane]' +
      (others.length ? ` (found ${others.map((o) => `[${o}]`).join(', ')})` : ''),
    hint: legacy
      ? 'rename [kube-master] to [kube_control_plane] (its current kubespray name) or [masters]'
      : 'list the control-plane hosts under [masters], one per line',
  });
  return undefined;
}

/** Hosts of the group and of its direct children (one level: a grandchild is refused), by line. */
function collectMembers(raw: RawInventory, g: RawGroup, P: Problems): { host: RawHost; via?: RawGroup }[] {
  const out: { host: RawHost; via?: RawGroup }[] = g.hosts.map((host) => ({ host }));
  for (const c of g.children) {
    const child = raw.groups.get(c.name);
    if (!child || c.name === g.name || c.name === 'all') {
      P.add({
        line: c.line,
        variable: c.name,
        message: child ? `[${g.name}:children] cannot list ${c.name}` : `[${g.name}:children] names group ${c.name}, which is not defined`,
      });
    } else if (child.children.length > 0) {
      P.add({
        line: c.line,
        variable: c.name,
        message: `group ${c.name} has children of its own: kha-deploy reads only one level of [${g.name}:children]`,
        hint: `list the master hosts under [${g.name}] or directly under [${c.name}]`,
      });
    } else {
      out.push(...child.hosts.map((host) => ({ host, via: child })));
    }
  }
  out.sort((a, b) => a.host.line - b.host.line);
  const seen = new Map<string, number>();
  return out.filter(({ host }) => {
    const first = seen.get(host.name);
    if (first === undefined) return seen.set(host.name, host.line), true;
    P.add({
      line: host.line,
      variable: host.name,
      message: `host ${host.name} is listed twice among the masters (lines ${first} and ${host.line})`,
      hint: 'list each master once',
    });
    return false;
  });
}

/** Variables we read, by precedence: host lines (any group) > [child:vars] > [masters:vars] > [all:vars]. */
function resolveVars(layers: { scope: string; vars: RawVar[] }[], who: string, P: Problems): Map<KnownVar, Source> {
  const out = new Map<KnownVar, Source>();
  for (const { scope, vars } of layers) {
    const here = new Map<KnownVar, Source[]>();
    for (const v of vars) {
      const name = canonicalName(v.key);
      if (!name) continue;
      here.set(name, [...(here.get(name) ?? []), { key: v.key, value: v.value, line: v.line, scope }]);
    }
    for (const [name, defs] of here) {
      const last = defs[defs.length - 1]!;
      if (new Set(defs.map((d) => d.value)).size > 1) {
        const keys = [...new Set(defs.map((d) => d.key))].join(' and ');
        P.add({
          line: last.line,
          variable: name,
          message: `${keys} set more than once ${scope === 'host line' ? `for host ${who}` : `in ${scope}`} with different values (lines ${defs.map((d) => d.line).join(', ')})`,
          hint: 'keep one definition',
        });
      }
      if (!out.has(name)) out.set(name, last);
    }
  }
  return out;
}

/** Variables one typo away from ours, in every section the masters read. */
function checkTypos(layers: { vars: RawVar[] }[], P: Problems): void {
  for (const v of layers.flatMap((l) => l.vars)) {
    const near = suggestVariable(v.key);
    if (near.length === 0) continue;
    const alt = near.join(' or ');
    P.add({ line: v.line, variable: v.key, message: `unknown variable ${v.key}: did you mean ${alt}?`, hint: `rename it to ${near[0]}` });
  }
}

/** Cluster-wide values: identical on every master; returns the source to use (or undefined = default). */
function clusterValue(key: ClusterVar, members: Member[], P: Problems): Source | undefined {
  const values = members.map((m) => m.vars.get(key));
  const text = (s: Source | undefined) => (s ? `=${s.value}` : 'default');
  // Reference: the most common value; on a tie the one not from a host line (the override is the odd one).
  const score = new Map<string, number>();
  for (const s of values) score.set(text(s), (score.get(text(s)) ?? (s?.scope === 'host line' ? 0 : 1)) + 2);
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
      line: s?.line ?? m.host.line,
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
  vrrp_preempt_delay: (v) => seconds(v, 0, 1000, 60),
};

/** A whole number of seconds; `2s` gets a hint instead of a bare refusal. */
function seconds(v: string, min: number, max: number, example: number): Bad | undefined {
  const bad = badOf(parseInteger(v, min, max));
  if (bad && /^[0-9]+s$/.test(v)) return { bad: bad.bad, hint: `write the number of seconds without a unit, e.g. ${example}` };
  return bad;
}

export function validateInventory(raw: RawInventory, opts: ValidateOptions = {}): ClusterSpec {
  const P = new Problems();
  for (const p of raw.problems) P.add(p);
  const fail = (): never => {
    throw new InventoryError(raw.file, [...P.list].sort((a, b) => (a.line ?? 0) - (b.line ?? 0)));
  };

  const group = selectGroup(raw, P);
  if (!group) return fail();
  const found = collectMembers(raw, group, P);
  if (found.length === 0) {
    P.add({
      line: group.line,
      variable: group.name,
      message: `[${group.name}] has no hosts: kha-deploy needs at least one master`,
      hint: `list the control-plane hosts under [${group.name}], one per line`,
    });
    return fail();
  }

  const allVars = raw.groups.get('all')?.vars ?? [];
  const hostLines = (name: string) => [...raw.groups.values()].flatMap((g) => g.hosts.filter((h) => h.name === name));
  const members: Member[] = found.map(({ host, via }) => {
    const layers = [
      { scope: 'host line', vars: hostLines(host.name).flatMap((h) => h.vars) },
      ...(via ? [{ scope: `[${via.name}:vars]`, vars: via.vars }] : []),
      { scope: `[${group.name}:vars]`, vars: group.vars },
      { scope: '[all:vars]', vars: allVars },
    ];
    checkTypos(layers, P);
    return { host, ...(via ? { via } : {}), vars: resolveVars(layers, host.name, P) };
  });

  // Cluster-wide HA values: every distinct value is checked, the agreed one (or the default) is used.
  const cv = {} as Record<ClusterVar, Source | undefined>;
  for (const key of CLUSTER_VARS) {
    cv[key] = clusterValue(key, members, P);
    const distinct = new Map(members.map((m) => m.vars.get(key)).filter((s): s is Source => !!s).map((s) => [s.line, s]));
    for (const src of distinct.values()) {
      const bad = CLUSTER_CHECKS[key](src.value);
      if (bad) P.bad(src, bad);
      if (bad && src === cv[key]) cv[key] = undefined;
    }
  }
  const vip = cv.vip?.value ?? '';
  const family = ipFamily(vip);
  if (!cv.vip && !members.some((m) => m.vars.has('vip'))) {
    const elsewhere = [...raw.groups.values()].flatMap((g) => g.vars.filter((v) => v.key === 'vip').map((v) => ({ g, v })))[0];
    P.add({
      line: group.varsLine ?? group.line,
      variable: 'vip',
      message: 'vip is not set: kha-deploy needs the virtual IP address the masters share',
      hint: elsewhere
        ? `vip is set in [${elsewhere.g.name}:vars] (line ${elsewhere.v.line}), which kha-deploy does not read: move it to [${group.name}:vars] or [all:vars]`
        : `set vip=<a free address in the masters' subnet> under [${group.name}:vars]`,
    });
  }
  const int = (src: Source | undefined, fallback: number) => (src ? Number(src.value) : fallback);
  const vipPort = int(cv.vip_port, DEFAULTS.vip_port);
  const apiserverPort = int(cv.apiserver_port, DEFAULTS.apiserver_port);
  if (vipPort === apiserverPort) {
    const src = cv.vip_port ?? cv.apiserver_port!;
    P.add({
      line: src.line,
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
      line: src.line,
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
  if (!vrrpPreempt && cv.vrrp_preempt_delay) {
    // keepalived drops preempt_delay under nopreempt ("incompatible"): say so instead of writing a setting that does nothing.
    P.add({
      line: cv.vrrp_preempt_delay.line,
      variable: cv.vrrp_preempt_delay.key,
      message: `vrrp_preempt_delay=${cv.vrrp_preempt_delay.value} cannot be combined with vrrp_preempt=${cv.vrrp_preempt!.value} (line ${cv.vrrp_preempt!.line}): without preemption a returning master never takes the VIP back, so there is nothing to delay`,
      hint: 'remove one: vrrp_preempt=false (the VIP stays where it is after a failover) or vrrp_preempt_delay=SECONDS (the primary takes it back after that delay)',
    });
  }
  if (vrrpAuthPass !== undefined && family === 6) {
    // An IPv6 VIP makes keepalived speak VRRPv3, which has no authentication: it refuses the config.
    P.add({
      line: cv.vrrp_auth_pass!.line,
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
    if (nameBad) P.add({ line: host.line, variable: host.name, message: nameBad.bad, ...(nameBad.hint ? { hint: nameBad.hint } : {}) });

    const addrSrc = vars.get('ansible_host');
    const address = addrSrc?.value ?? host.name;
    let addrFamily: 0 | 4 | 6 = nameBad ? 0 : ipFamily(address);
    if (addrSrc) {
      const a = checkAddress(address);
      if (isBad(a)) P.bad(addrSrc, a);
      addrFamily = isBad(a) ? 0 : a.family;
    }
    const where = { line: addrSrc?.line ?? host.line, variable: addrSrc?.key ?? host.name };
    if (family && addrFamily && addrFamily !== family)
      P.add({
        ...where,
        message: `${host.name}'s address ${address} is IPv${addrFamily} but the VIP ${vip} is IPv${family}: the VIP and the masters must use the same IP family`,
      });
    if (family && addrFamily && normalizeIP(address) === normalizeIP(vip))
      P.add({
        line: cv.vip!.line,
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
        line: userSrc.line,
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
        privateKeyFile = v.startsWith('~/') ? join(home, v.slice(2)) : resolve(dirname(raw.file), v);
        if (opts.fileExists && !opts.fileExists(privateKeyFile))
          P.bad(keySrc, {
            bad: `${show(v)} does not exist (looked for ${privateKeyFile})`,
            hint: "a relative path is relative to the inventory file's directory",
          });
      }
    }

    const prioSrc = vars.get('priority');
    explicit.push(prioSrc ? intVar(prioSrc, -1, MIN_PRIORITY, MAX_PRIORITY, P) : undefined);

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
      line: host.line,
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
        line: src.line,
        variable: 'priority',
        message: shared
          ? `priority ${p} is set in ${src.scope} (line ${src.line}), so every master gets it: keepalived needs a different priority on each master`
          : `priority ${p} is used by both ${members[firstIdx]!.host.name} and ${members[i]!.host.name}: keepalived needs a different priority on each master`,
        hint: shared ? 'set priority on each host line instead' : `set a different priority on ${members[i]!.host.name}`,
      });
    }
  }
  if (members.length > MAX_PRIORITY)
    P.add({ line: group.line, variable: group.name, message: `${members.length} masters: VRRP has only ${MAX_PRIORITY} priorities` });

  if (P.list.length > 0 || family === 0) return fail(); // family is 0 only when vip was refused

  const priorities = assignPriorities(explicit);
  const full: HostSpec[] = hosts.map((h, i) => ({ ...h, priority: priorities[i]! }));
  const weight = checkWeight(full);
  for (const low of weight.tooLow) {
    const i = full.indexOf(low.host);
    const src = members[i]!.vars.get('priority');
    const top = weight.highest;
    P.add({
      line: src?.line ?? low.host.line,
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
  const defaulted = full.filter((_, i) => explicit[i] === undefined).map((h) => h.name);
  return {
    file: raw.file,
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
    vrrpCheckWeight: weight.weight,
    kubeconfig,
    ...(vrrpAuthPass !== undefined ? { vrrpAuthPass } : {}),
    hosts: full,
    order,
    primary: order[0]!,
    primaryReason: describePrimary(full, defaulted),
  };
}
