// keepalived elects the highest priority (1-254) as MASTER: default priorities, the rollout order
// and the plain-words reason for the primary all follow from that one rule.

export const FIRST_DEFAULT_PRIORITY = 150;
export const DEFAULT_PRIORITY_STEP = 10;
export const MIN_PRIORITY = 1;
export const MAX_PRIORITY = 254;

export const PRIORITY_DEFAULT_RULE =
  'priorities not set in the inventory default to 150 for the first listed master, then 10 lower each ' +
  '(a default already used by another master moves down to the next free value)';

/**
 * Fill in missing priorities, by position in the inventory: the i-th master (0-based) gets
 * 150 - 10*i, raised to 1 if lower. A value already taken (explicit, or an earlier default) moves
 * down to the next free value; if none is free down to 1, up to the next free value up to 254.
 * Position, not count of defaulted hosts, so adding a priority to one host never shifts the others.
 */
export function assignPriorities(explicit: readonly (number | undefined)[]): number[] {
  const taken = new Set(explicit.filter((p): p is number => p !== undefined));
  return explicit.map((p, i) => {
    if (p !== undefined) return p;
    const start = Math.max(FIRST_DEFAULT_PRIORITY - DEFAULT_PRIORITY_STEP * i, MIN_PRIORITY);
    let v = start;
    while (v >= MIN_PRIORITY && taken.has(v)) v--;
    if (v < MIN_PRIORITY) for (v = start; taken.has(v) && v <= MAX_PRIORITY; ) v++;
    taken.add(v);
    return v;
  });
}

export interface Ranked {
  name: string;
  priority: number;
}

/** Primary first, then backups by descending priority (priorities are unique by then). */
export function electionOrder(hosts: readonly Ranked[]): string[] {
  return [...hosts].sort((a, b) => b.priority - a.priority).map((h) => h.name);
}

/** Which master is the primary and why, in plain words; `defaulted` names masters without a priority. */
export function describePrimary(hosts: readonly Ranked[], defaulted: readonly string[]): string {
  const [first, ...rest] = [...hosts].sort((a, b) => b.priority - a.priority) as [Ranked, ...Ranked[]];
  const others = rest.map((h, i) => (i === 0 ? `${h.name} has ${h.priority}` : `${h.name} ${h.priority}`));
  const why =
    rest.length === 0
      ? `${first.name} is the primary: it is the only master (priority ${first.priority}).`
      : `${first.name} is the primary: it has the highest priority (${first.priority}; ${others.join(', ')}).`;
  let text = `${why} In keepalived the highest priority holds the VIP.`;
  if (defaulted.length > 0) {
    const who = defaulted.length === hosts.length ? 'No master has a priority in the inventory' : `${defaulted.join(', ')} ${defaulted.length === 1 ? 'has' : 'have'} no priority in the inventory`;
    text += ` ${who}: ${PRIORITY_DEFAULT_RULE}.`;
  }
  return text;
}

/**
 * The weight of keepalived's "the local load balancer can serve" check: -(highest - lowest + 1),
 * identical on every master. A master whose check fails drops below the lowest priority, so the VIP
 * leaves it for any healthy master; when every check fails (all apiservers down), every priority
 * drops by the same amount, the order stays and the VIP stays where it is. That holds only while no
 * lowered priority goes below 1 (keepalived clamps there): `tooLow` lists the masters that would.
 */
export function checkWeight<H extends Ranked>(hosts: readonly H[]): { weight: number; highest: H; tooLow: { host: H; failed: number }[] } {
  const sorted = [...hosts].sort((a, b) => b.priority - a.priority);
  const highest = sorted[0]!;
  const lowest = sorted[sorted.length - 1]!;
  const weight = -(highest.priority - lowest.priority + 1);
  const tooLow = hosts.filter((h) => h.priority + weight < MIN_PRIORITY).map((host) => ({ host, failed: host.priority + weight }));
  return { weight, highest, tooLow };
}
