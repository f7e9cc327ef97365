// The order the masters are changed in, and where the VIP must be after each one. Pure: facts and
// plans in, steps out. Deploy (src/runner/rollout.ts) follows it and gates on it; `check` prints it.
//
// First deploy (no master holds the VIP with keepalived running a config kha-deploy wrote): the
// primary first, then the backups by descending priority, each gated on the VIP being on the primary,
// as the manual procedure requires (the first keepalived must take the VIP before the others start).
//
// A running cluster (one master holds the VIP, its keepalived runs our config): the masters that do
// not hold the VIP first, one at a time, the holder last, so a change that breaks a master breaks one
// that serves no client. When priorities change, the order is chosen by simulating VRRP's election
// (the highest priority takes the VIP from a lower holder; an equal one never does, RFC 5798) so that
// the VIP moves as few times as possible: not at all while the holder stays the primary, exactly once
// (from the holder straight to the new primary) when the primary changes. Each step says where the VIP
// must be after it, so the gate confirms a deliberate move before the next master is touched.
import type { ClusterSpec, HostFacts, HostPlan } from './types.js';

export interface OrderInput {
  name: string;
  /** Priority keepalived runs with now; null when keepalived does not run (it takes no part in the election). */
  running: number | null;
  /** Priority after this run (the inventory's). */
  next: number;
  /** This run changes the master (any step has ops). */
  changes: boolean;
}

export interface OrderStep {
  host: string;
  /** This run changes the host (unchanged hosts keep their place and get no gate). */
  changes: boolean;
  /** Where the VIP must be once this host's change is done; undefined: any one master (no preemption) or unknown. */
  expectHolder: string | undefined;
  /** The VIP leaves its holder during this step (a deliberate move the gate must confirm). */
  moves: boolean;
}

export interface ChangeOrder {
  /** 'first-deploy': primary first; 'running': non-holders first, holder last. */
  mode: 'first-deploy' | 'running';
  /** The master holding the VIP when the run started (running mode). */
  holder?: string;
  steps: OrderStep[];
  /** VIP moves the order causes (running mode, by the simulation). */
  moves: number;
  /** One sentence for the operator: why this order. */
  reason: string;
}

/** Beyond this many masters to change, no search: non-holders in priority order, then the holder. */
const SEARCH_LIMIT = 7;

/** Who holds the VIP after the election settles, from `holder` (null: nobody yet), VRRP with preemption. */
export function elect(prio: ReadonlyMap<string, number | null>, holder: string | null, order: readonly string[]): string | null {
  let best: string | null = null;
  for (const n of order) {
    const p = prio.get(n);
    if (p == null) continue;
    if (best === null || p > prio.get(best)!) best = n;
  }
  if (holder === null || prio.get(holder) == null) return best;
  // The holder keeps the VIP unless someone has a strictly higher priority.
  return best !== null && prio.get(best)! > prio.get(holder)! ? best : holder;
}

/** Simulate changing `seq` one at a time from `holder`; the holder after each step. */
function simulate(inputs: readonly OrderInput[], seq: readonly string[], holder: string, base: readonly string[]): string[] {
  const prio = new Map(inputs.map((i) => [i.name, i.running]));
  const next = new Map(inputs.map((i) => [i.name, i.next]));
  let h: string | null = holder;
  const out: string[] = [];
  for (const n of seq) {
    prio.set(n, next.get(n)!);
    h = elect(prio, h, base);
    out.push(h ?? '');
  }
  return out;
}

function* permutations<T>(items: readonly T[]): Generator<T[]> {
  if (items.length <= 1) {
    yield [...items];
    return;
  }
  for (let i = 0; i < items.length; i++) {
    const rest = [...items.slice(0, i), ...items.slice(i + 1)];
    for (const p of permutations(rest)) yield [items[i]!, ...p];
  }
}

/**
 * The order for a running cluster: every permutation of the masters to change is simulated (up to
 * SEARCH_LIMIT of them) and the best kept: fewest VIP moves, then the holder as late as possible, then
 * closest to the plain order (non-holders by descending priority, then the holder).
 */
export function runningOrder(inputs: readonly OrderInput[], holder: string, primary: string, preempt: boolean): { steps: OrderStep[]; moves: number } {
  const base = inputs.map((i) => i.name);
  const changing = inputs.filter((i) => i.changes).map((i) => i.name);
  const plain = [...changing.filter((n) => n !== holder), ...changing.filter((n) => n === holder)];
  const unchanged = base.filter((n) => !changing.includes(n));
  const cost = (seq: string[]): number[] => {
    if (!preempt) return [0, 0, 0];
    const hs = simulate(inputs, seq, holder, base);
    let moves = 0;
    let prev = holder;
    for (const h of hs) {
      if (h !== prev) moves++;
      prev = h;
    }
    // A run that does not end on the primary is not a candidate (cannot happen with unique priorities).
    if (seq.length > 0 && hs.at(-1) !== primary) moves += 100;
    const holderPos = seq.indexOf(holder);
    const early = holderPos < 0 ? 0 : seq.length - 1 - holderPos;
    const displacement = seq.reduce((a, n, i) => a + Math.abs(i - plain.indexOf(n)), 0);
    return [moves, early, displacement];
  };
  let best = plain;
  let bestCost = cost(plain);
  if (preempt && changing.length > 1 && changing.length <= SEARCH_LIMIT && bestCost[0]! > 0) {
    for (const p of permutations(plain)) {
      const c = cost(p);
      if (c[0]! < bestCost[0]! || (c[0] === bestCost[0] && (c[1]! < bestCost[1]! || (c[1] === bestCost[1] && c[2]! < bestCost[2]!)))) {
        best = p;
        bestCost = c;
      }
    }
  }
  const hs = preempt ? simulate(inputs, best, holder, base) : best.map(() => '');
  let prev = holder;
  const steps: OrderStep[] = unchanged.map((n) => ({ host: n, changes: false, expectHolder: preempt ? holder : undefined, moves: false }));
  best.forEach((n, i) => {
    const h = hs[i]!;
    steps.push({ host: n, changes: true, expectHolder: preempt ? h : undefined, moves: preempt && h !== prev });
    prev = h;
  });
  return { steps, moves: preempt ? Math.min(bestCost[0]!, 99) : 0 };
}

/** The priority keepalived runs with on a master now, from its facts (null: not running). */
export function runningPriority(facts: HostFacts): number | null {
  if (facts.units.keepalived.active !== 'active' && facts.units.keepalived.active !== 'reloading') return null;
  return facts.keepalivedConf?.priority ?? null;
}

/** The master holding the VIP with keepalived running a config kha-deploy loaded, when exactly one does. */
export function runningHolder(hosts: readonly { name: string; facts?: HostFacts | undefined }[]): string | undefined {
  const holders = hosts.filter((h) => (h.facts?.vipOn.length ?? 0) > 0);
  if (holders.length !== 1) return undefined;
  const f = holders[0]!.facts!;
  if (runningPriority(f) === null || f.applied.keepalived === null) return undefined;
  return holders[0]!.name;
}

/**
 * The change order for this run. `hosts` are the masters in the run (any order); a master without
 * facts (check's callers may lack them) makes the run count as a first deploy.
 */
export function changeOrder(spec: ClusterSpec, hosts: readonly { name: string; facts?: HostFacts | undefined; plan: HostPlan }[]): ChangeOrder {
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const names = spec.order.filter((n) => byName.has(n));
  const changes = (n: string) => byName.get(n)!.plan.steps.some((s) => s.ops.length > 0);
  const preempt = spec.vrrpPreempt !== false;
  const primaryIn = byName.has(spec.primary);
  const holder = hosts.every((h) => h.facts) ? runningHolder(hosts) : undefined;
  if (holder === undefined) {
    return {
      mode: 'first-deploy',
      steps: names.map((n) => ({ host: n, changes: changes(n), expectHolder: preempt && primaryIn ? spec.primary : undefined, moves: false })),
      moves: 0,
      reason: 'no master holds the VIP with keepalived running: the primary first, then the backups by priority',
    };
  }
  const everyMaster = spec.hosts.every((h) => byName.has(h.name));
  const inputs: OrderInput[] = names.map((n) => {
    const f = byName.get(n)!.facts!;
    const next = spec.hosts.find((h) => h.name === n)!.priority;
    return { name: n, running: runningPriority(f) ?? (n === holder ? next : null), next, changes: changes(n) };
  });
  // With masters outside --limit the election cannot be simulated: the VIP must stay where it is (or on the primary).
  const simulateElection = preempt && everyMaster;
  const r = runningOrder(inputs, holder, spec.primary, simulateElection);
  if (!simulateElection && preempt) {
    for (const s of r.steps) s.expectHolder = primaryIn ? spec.primary : undefined;
  }
  const moving = r.steps.find((s) => s.moves);
  const reason =
    `${holder} holds the VIP: the other masters first, ${holder} last` +
    (moving ? `; the VIP moves once, to ${moving.expectHolder}, when ${moving.host} is changed (the gate confirms it before the next master)` : '');
  return { mode: 'running', holder, steps: r.steps, moves: r.moves, reason };
}
