// Issue 9 tests: the cluster with other priorities; primary and order as the inventory validation derives them.
import type { ClusterSpec } from '../../src/types.js';

export function withPriorities(base: ClusterSpec, prio: Record<string, number>): ClusterSpec {
  const hosts = base.hosts.map((h) => ({ ...h, priority: prio[h.name] ?? h.priority }));
  const order = [...hosts].sort((a, b) => b.priority - a.priority).map((h) => h.name);
  const lo = Math.min(...hosts.map((h) => h.priority));
  const hi = Math.max(...hosts.map((h) => h.priority));
  return { ...base, hosts, order, primary: order[0]!, primaryReason: `${order[0]} has the highest priority`, vrrpCheckWeight: -(hi - lo + 1) };
}
