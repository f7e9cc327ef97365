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
import { unicastAddress } from './render.js';
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
  /**
   * A managed instance move (see instanceMove): stop keepalived here before the change and leave it
   * stopped, so this master neither joins the new instance early (it would elect itself and take the
   * VIP beside the old holder) nor stays in the old one.
   */
  keepalivedStopped?: boolean;
  /** After this master's change (the holder's: its reload deletes the old instance and drops the VIP), start keepalived on these: the new instance forms on every master at once. */
  startAfter?: string[];
  /** The VIP this step's gate looks for when it is not the inventory's: the old one, still held by the old instance (a vip change). */
  gateVip?: string;
  /**
   * The holder's own instance is recreated by this change (its interface or unicast_src_ip changes) while the
   * others keep theirs: stop keepalived here first, so the VIP moves to `to` (keepalived's priority-0 advert),
   * confirm it there, then change this master and start keepalived; it takes the VIP back by preemption.
   */
  moveAwayFirst?: { to: string };
  /**
   * The holder keeps answering for the VIP while its instance is recreated: a copy of the address on lo
   * survives the reload that deletes the old instance's VIP (src/vip-hold.ts), and goes as soon as
   * the new instance holds the VIP again (a few ms of gap instead of the master-down interval). Only when
   * the holder stays the VIP's owner (it is the primary) and the VIP itself does not change.
   */
  holdVip?: boolean;
}

/** What a managed instance move changes, and how. */
export interface InstanceMove {
  /** What differs between the instance keepalived runs and the new one, in words ("virtual_router_id 51 → 52"). */
  changes: string[];
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
  /** Set when the VRRP instance itself changes (VRID, VIP, auth, multicast/unicast): a managed move. */
  instanceMove?: InstanceMove;
  /** Why this run must not change anything (an instance move with masters left out by --limit). */
  refusal?: string;
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

/** The VIP the running keepalived instances hold when it is not the inventory's (a vip change), else undefined. */
function runningVip(spec: ClusterSpec, hosts: readonly OrderHost[]): string | undefined {
  for (const h of hosts) {
    const c = h.facts?.keepalivedConf;
    if (h.facts && runningPriority(h.facts) !== null && c?.vip && c.vip !== spec.vip) return c.vip;
  }
  return undefined;
}

/** The one master with `vip` on an interface (from `ip -o addr` in the facts), its keepalived running our config. */
function holderOf(hosts: readonly OrderHost[], vip: string): string | undefined {
  const holders = hosts.filter((h) => h.facts?.interfaces.some((i) => i.addrs.some((a) => a.split('/')[0] === vip)));
  if (holders.length !== 1) return undefined;
  const f = holders[0]!.facts!;
  return runningPriority(f) !== null && f.applied.keepalived !== null ? holders[0]!.name : undefined;
}

/** What recreates the holder's own instance while the others keep theirs: its interface or its unicast_src_ip. */
function holderRecreated(spec: ClusterSpec, h: OrderHost): string | undefined {
  const c = h.facts?.keepalivedConf;
  const host = spec.hosts.find((x) => x.name === h.name);
  if (!c || !host || !h.facts) return undefined;
  const iface = host.vipInterface ?? h.facts.routeInterface;
  if (c.interface !== null && iface && c.interface !== iface) return `interface ${c.interface} → ${iface}`;
  const src = unicastAddress(host);
  if (spec.vrrpUnicast === true && c.unicastSrcIp !== null && c.unicastSrcIp !== src) return `unicast_src_ip ${c.unicastSrcIp} → ${src}`;
  return undefined;
}

/** A master as changeOrder sees it; `authDiffers`: its running keepalived.conf has another vrrp_auth_pass than the inventory's (a salted hash compared, src/runner/rollout.ts). */
export interface OrderHost {
  name: string;
  facts?: HostFacts | undefined;
  plan: HostPlan;
  authDiffers?: boolean;
}

/**
 * How the VRRP instance keepalived runs on the masters differs from the one this run renders, in the
 * ways that make masters deaf to each other or make keepalived's reload delete and recreate the
 * instance (ha-facts.md: VRID, family, interface, unicast-or-multicast, unicast_src_ip; and the VIP and
 * the auth pass, which every master must agree on). Empty: a reload keeps the instance and its VIP.
 * Only masters whose keepalived runs count (a stopped one takes no part in the election).
 */
export function instanceChanges(spec: ClusterSpec, hosts: readonly OrderHost[]): string[] {
  const out = new Set<string>();
  const unicast = spec.vrrpUnicast === true;
  for (const h of hosts) {
    const f = h.facts;
    if (!f || runningPriority(f) === null) continue;
    const c = f.keepalivedConf;
    if (!c) continue;
    if (c.virtualRouterId !== null && c.virtualRouterId !== spec.virtualRouterId) out.add(`virtual_router_id ${c.virtualRouterId} → ${spec.virtualRouterId}`);
    if (c.vip !== null && c.vip !== spec.vip) out.add(`vip ${c.vip} → ${spec.vip}`);
    if ((c.unicastSrcIp !== null) !== unicast) out.add(unicast ? 'multicast → unicast (vrrp_unicast=true)' : 'unicast → multicast (vrrp_unicast=false)');
    if (h.authDiffers === true) out.add('vrrp_auth_pass (value hidden)');
  }
  return [...out];
}

/**
 * The managed move of the VRRP instance on a running cluster. VRRP cannot hand the VIP from one instance
 * to another (the new one does not hear the old holder), and two instances electing at once put the VIP
 * on two masters. So:
 *   1. every master except the holder, one at a time: keepalived stopped, then its change (configs
 *      written, haproxy reloaded); keepalived stays stopped. The holder alone keeps the VIP (old instance);
 *      the gate after each confirms the VIP is still on the holder only and kubectl answers.
 *   2. the holder last: its change, keepalived reloaded (the old instance is deleted: the VIP leaves it),
 *      then at once keepalived started on the others: the new instance forms everywhere at the same
 *      time, all BACKUP, and the highest priority takes the VIP after its master-down interval
 *      (3 × advert_int + skew). The gate waits until the VIP is on the primary only.
 * One VIP handover (or a drop and a return to the same master), never two holders. Where the holder
 * stays the owner (holdVip) it keeps answering for the VIP through the reload; otherwise the API is
 * unreachable through the VIP for about the master-down interval.
 */
export function instanceMoveOrder(hosts: readonly OrderHost[], names: readonly string[], holder: string, primary: string, preempt: boolean, primaryIn: boolean, oldVip?: string): OrderStep[] {
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const others = names.filter((n) => n !== holder);
  // By descending priority in spec.order already (names follow spec.order).
  const stopped = others.filter((n) => byName.get(n)!.plan.steps.some((s) => s.ops.length > 0) || byName.get(n)!.facts?.units.keepalived.active === 'active');
  const steps: OrderStep[] = others.map((n) => ({
    host: n,
    changes: stopped.includes(n),
    expectHolder: preempt ? holder : undefined,
    moves: false,
    ...(stopped.includes(n) ? { keepalivedStopped: true } : {}),
    ...(oldVip ? { gateVip: oldVip } : {}),
  }));
  const stays = preempt && primaryIn && primary === holder && oldVip === undefined;
  steps.push({ host: holder, changes: true, expectHolder: preempt && primaryIn ? primary : undefined, moves: preempt && primary !== holder, startAfter: stopped, ...(stays ? { holdVip: true } : {}) });
  return steps;
}

/**
 * The change order for this run. `hosts` are the masters in the run (any order); a master without
 * facts (check's callers may lack them) makes the run count as a first deploy.
 */
export function changeOrder(spec: ClusterSpec, hosts: readonly OrderHost[]): ChangeOrder {
  const byName = new Map(hosts.map((h) => [h.name, h]));
  const names = spec.order.filter((n) => byName.has(n));
  const changes = (n: string) => byName.get(n)!.plan.steps.some((s) => s.ops.length > 0);
  const preempt = spec.vrrpPreempt !== false;
  const primaryIn = byName.has(spec.primary);
  const allFacts = hosts.every((h) => h.facts);
  // A vip change: the facts look for the new VIP, which nobody holds yet; the old instance holds the old one.
  const oldVip = allFacts ? runningVip(spec, hosts) : undefined;
  const holder = allFacts ? runningHolder(hosts) ?? (oldVip ? holderOf(hosts, oldVip) : undefined) : undefined;
  if (holder === undefined) {
    return {
      mode: 'first-deploy',
      steps: names.map((n) => ({ host: n, changes: changes(n), expectHolder: preempt && primaryIn ? spec.primary : undefined, moves: false })),
      moves: 0,
      reason: 'no master holds the VIP with keepalived running: the primary first, then the backups by priority',
    };
  }
  const everyMaster = spec.hosts.every((h) => byName.has(h.name));
  const instance = instanceChanges(spec, hosts);
  const recreated = instance.length === 0 ? holderRecreated(spec, byName.get(holder)!) : undefined;
  if (instance.length > 0) {
    const steps = instanceMoveOrder(hosts, names, holder, spec.primary, preempt, primaryIn, oldVip);
    const others = steps.filter((st) => st.keepalivedStopped).map((st) => st.host);
    return {
      mode: 'running',
      holder,
      steps,
      moves: 1,
      instanceMove: { changes: instance },
      ...(everyMaster
        ? {}
        : {
            refusal: `the VRRP instance changes (${instance.join(', ')}) and masters are left out by --limit (${spec.hosts.filter((h) => !byName.has(h.name)).map((h) => h.name).join(', ')}): they would keep the old instance and take the VIP beside the new one`,
          }),
      reason:
        `the VRRP instance changes (${instance.join(', ')}): a managed move. ${others.length > 0 ? `${others.join(', ')} first, each with keepalived stopped (the VIP stays on ${holder}), ` : ''}` +
        `${holder} last: its reload drops the VIP from the old instance and keepalived starts on the others at once; the new instance elects ${preempt ? spec.primary : 'one master'} ` +
        `(the API through the VIP pauses for about 3 × advert_int), and the gate confirms it before the final check`,
    };
  }
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
  if (recreated && preempt) {
    // Where the VIP goes while the holder is stopped: the highest priority among the others once their changes are done.
    const others = inputs.filter((i) => i.name !== holder && (i.changes ? true : i.running !== null));
    const to = others.sort((a, b) => b.next - a.next)[0]?.name;
    const hs = r.steps.find((st) => st.host === holder && st.changes);
    if (to && hs) {
      hs.moveAwayFirst = { to };
      return {
        mode: 'running',
        holder,
        steps: r.steps,
        moves: 2,
        reason:
          `${holder} holds the VIP: the other masters first, ${holder} last. Its keepalived instance is recreated (${recreated}), which a reload cannot do ` +
          `without dropping the VIP: keepalived is stopped there first, the VIP moves to ${to} (the gate confirms it), then ${holder} is changed, started, and takes the VIP back`,
      };
    }
  }
  const moving = r.steps.find((s) => s.moves);
  const reason =
    `${holder} holds the VIP: the other masters first, ${holder} last` +
    (moving ? `; the VIP moves once, to ${moving.expectHolder}, when ${moving.host} is changed (the gate confirms it before the next master)` : '');
  return { mode: 'running', holder, steps: r.steps, moves: r.moves, reason };
}
