// The variables kha-deploy reads, their defaults, and the typo check that keeps a misspelt one
// (vip_prot=…) from being silently ignored while a default is used instead.

/** Groups that may hold the masters: ours, kubeasz's (kube-master before 2021, kube_master since) and kubespray's. */
export const MASTER_GROUPS = ['masters', 'kube_master', 'kube-master', 'kube_control_plane'] as const;

/** kubeasz's load-balancer groups: [lb] (2018), [ex-lb] (2019), [ex_lb] (since 2021). */
export const LB_GROUPS = ['lb', 'ex-lb', 'ex_lb'] as const;

/** Must be identical on every master (one keepalived VRRP instance, one haproxy frontend). */
export const CLUSTER_VARS = [
  'vip',
  'vip_port',
  'apiserver_port',
  'virtual_router_id',
  'advert_int',
  'haproxy_balance',
  'haproxy_health_check',
  'haproxy_check_inter',
  'haproxy_check_fall',
  'haproxy_check_rise',
  'haproxy_monitor_port',
  'kubeconfig',
  'vrrp_auth_pass',
  'vrrp_preempt',
  'vrrp_preempt_delay',
  'vrrp_unicast',
] as const;

/** May differ per master. */
export const HOST_VARS = [
  'ansible_host',
  'ansible_port',
  'ansible_user',
  'ansible_ssh_private_key_file',
  'ansible_become',
  'ansible_become_user',
  'ansible_become_method',
  'priority',
  'vip_interface',
  'ansible_ssh_common_args',
] as const;

export type ClusterVar = (typeof CLUSTER_VARS)[number];
export type HostVar = (typeof HOST_VARS)[number];
export type KnownVar = ClusterVar | HostVar;

export const KNOWN_VARS: readonly KnownVar[] = [...CLUSTER_VARS, ...HOST_VARS];

/** Other spellings Ansible's ssh connection accepts for the same setting: read as the canonical name. */
export const ALIASES: Readonly<Record<string, KnownVar>> = {
  ansible_ssh_host: 'ansible_host',
  ansible_ssh_port: 'ansible_port',
  ansible_ssh_user: 'ansible_user',
  ansible_private_key_file: 'ansible_ssh_private_key_file',
};

/**
 * kubeasz's names for the same settings (its hosts files, unchanged). KUBE_APISERVER (its port is
 * vip_port) and LB_ROLE (master = the primary) are read by validate.ts itself.
 */
export const KUBEASZ_NAMES: Readonly<Record<string, KnownVar>> = {
  MASTER_IP: 'vip',
  EX_APISERVER_VIP: 'vip',
  EX_APISERVER_PORT: 'vip_port',
  SECURE_PORT: 'apiserver_port',
  LB_IF: 'vip_interface',
  ROUTER_ID: 'virtual_router_id',
};

/** Every name read as `name`, ours first: when two are set they must agree. */
export function spellings(name: KnownVar): string[] {
  const other = (m: Readonly<Record<string, KnownVar>>) => Object.keys(m).filter((k) => m[k] === name);
  return [name, ...other(ALIASES), ...other(KUBEASZ_NAMES)];
}

export const DEFAULTS = {
  ansible_port: 22,
  ansible_user: 'root',
  ansible_become: false,
  vip_port: 8443,
  apiserver_port: 6443,
  virtual_router_id: 51,
  advert_int: 1,
  haproxy_balance: 'roundrobin',
  haproxy_health_check: 'readyz',
  haproxy_check_inter: 2,
  haproxy_check_fall: 3,
  haproxy_check_rise: 2,
  haproxy_monitor_port: 8404,
  kubeconfig: '/etc/kubernetes/admin.conf',
  vrrp_preempt: true,
  vrrp_preempt_delay: 0,
  vrrp_unicast: false,
} as const;

export const BALANCE_ALGORITHMS = ['roundrobin', 'leastconn', 'static-rr', 'first', 'source'] as const;
/** readyz: GET /readyz over TLS, expect 200 (an apiserver shutting down or not ready is taken out); tcp: a TCP connect only. */
export const HEALTH_CHECKS = ['readyz', 'tcp'] as const;

/** Real Ansible variables close in spelling to ours: never reported as typos. */
const NOT_TYPOS = new Set([
  'ip',
  'ansible_ssh_pass',
  'ansible_password',
  'ansible_become_pass',
  'ansible_become_password',
  'ansible_become_exe',
  'ansible_become_flags',
  'ansible_connection',
  'ansible_shell_type',
  'ansible_timeout',
  'ansible_ssh_timeout',
]);

/** The canonical name of a variable we read, or undefined. */
export function canonicalName(key: string): KnownVar | undefined {
  if ((KNOWN_VARS as readonly string[]).includes(key)) return key as KnownVar;
  return ALIASES[key] ?? KUBEASZ_NAMES[key];
}

/** Optimal string alignment distance: Levenshtein plus adjacent transposition (vip_prot → vip_port = 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Our variable names that `key` is probably a misspelling of (nearest first), or [] when `key` is
 * ours or not close to any. Case is ignored (VIP → vip); distance 1 for keys of 3+ characters
 * (so kubespray's `ip` is not taken for `vip`), distance 2 only between names of 8+ characters.
 */
export function suggestVariable(key: string): string[] {
  if (canonicalName(key) || NOT_TYPOS.has(key) || key === 'KUBE_APISERVER' || key === 'LB_ROLE') return [];
  const k = key.toLowerCase();
  if (k.length < 3) return [];
  let best = Infinity;
  let found: string[] = [];
  for (const name of [...KNOWN_VARS, ...Object.keys(ALIASES)]) {
    const dist = editDistance(k, name);
    const limit = k.length >= 8 && name.length >= 8 ? 2 : 1;
    if (dist > limit) continue;
    if (dist < best) [best, found] = [dist, [name]];
    else if (dist === best) found.push(name);
  }
  return found;
}
