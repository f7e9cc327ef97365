// The failover drill's figures (pure): probe lines in, failed probes and the API gap out; the
// report as a table and as JSON.
import { PROBE_LINE, type ProbeSettings } from './scripts.js';

export interface ProbeSample {
  /** Nanoseconds on the probing host's clock (as decimal strings are too long for a number: BigInt). */
  startNs: bigint;
  endNs: bigint;
  code: string;
  ok: boolean;
}

const ANSWERED = new Set(['200', '401', '403']);

/** The `@@KHA-PROBE START END CODE` lines of a probe loop (anything else is ignored: login banners). */
export function parseProbeLines(output: string): ProbeSample[] {
  const out: ProbeSample[] = [];
  for (const line of output.split('\n')) {
    const m = new RegExp(`^${PROBE_LINE} (\\d+) (\\d+) (\\d{3})$`).exec(line.trim());
    if (!m) continue;
    out.push({ startNs: BigInt(m[1]!), endNs: BigInt(m[2]!), code: m[3]!, ok: ANSWERED.has(m[3]!) });
  }
  return out;
}

export interface ProbeFigures {
  probes: number;
  failed: number;
  /**
   * Longest time without an answer through the VIP: from the end of the last answered probe before a
   * run of failures to the start of the first answered probe after it (0: no probe failed).
   */
  apiGapMs: number;
  /** The last probe answered (false: the API was still not answering when the probe loop ended). */
  recovered: boolean;
}

const ms = (ns: bigint) => Number(ns / 1000n) / 1000;

export function probeFigures(samples: readonly ProbeSample[]): ProbeFigures {
  let gap = 0;
  let i = 0;
  while (i < samples.length) {
    if (samples[i]!.ok) {
      i++;
      continue;
    }
    let j = i;
    while (j < samples.length && !samples[j]!.ok) j++;
    const from = i > 0 ? samples[i - 1]!.endNs : samples[i]!.startNs;
    const to = j < samples.length ? samples[j]!.startNs : samples[j - 1]!.endNs;
    gap = Math.max(gap, ms(to - from));
    i = j;
  }
  return {
    probes: samples.length,
    failed: samples.filter((s) => !s.ok).length,
    apiGapMs: Math.round(gap),
    recovered: samples.length > 0 && samples.at(-1)!.ok,
  };
}

export type DrillScenario = 'keepalived' | 'haproxy';
export const DRILL_SCENARIOS: readonly DrillScenario[] = ['keepalived', 'haproxy'];

/** One direction of a scenario: the VIP leaving the holder (away) or coming back (back). */
export interface DrillLeg extends ProbeFigures {
  /** Where the VIP went. */
  to: string;
  /** From the stop (away) or start (back) command to the VIP seen on `to`, measured at the controller. */
  vipMs: number;
}

export interface DrillScenarioResult {
  scenario: DrillScenario;
  /** `keepalived stopped on master1` */
  title: string;
  away: DrillLeg;
  back: DrillLeg;
}

export interface DrillRoles {
  holder: string;
  /** The master expected to take the VIP (highest priority after the holder). */
  next: string;
  /** The non-holder that runs the probe loop through the VIP. */
  prober: string;
}

export interface DrillReport {
  ok: boolean;
  exitCode: number;
  inventory: string;
  vip: string;
  roles: DrillRoles;
  probe: ProbeSettings;
  scenarios: DrillScenarioResult[];
  /** The cluster was found healthy again afterwards, VIP on the original holder. */
  restored: boolean;
  /** What stopped the drill (absent when every scenario ran). */
  error?: string;
}

/** Pick the drill's roles from the holder and the inventory's priority order (spec.order: highest first). */
export function drillRoles(order: readonly string[], holder: string): DrillRoles | undefined {
  const others = order.filter((n) => n !== holder);
  if (others.length === 0) return undefined;
  // The probe runs on a master that is neither losing nor taking the VIP when there is one.
  return { holder, next: others[0]!, prober: others.at(-1)! };
}

const secs = (v: number) => `${(v / 1000).toFixed(2)} s`;

export function drillText(r: DrillReport): string {
  const { roles } = r;
  const out = [
    `failover drill, ${r.inventory}: VIP ${r.vip} on ${roles.holder}; next in line ${roles.next}; probes through the VIP from ${roles.prober} (curl every ${r.probe.intervalMs} ms + its own time, ${r.probe.timeoutMs} ms timeout)`,
    '',
  ];
  const head = ['SCENARIO', 'VIP MOVED', 'API GAP', 'FAILED', 'VIP BACK', 'API GAP', 'FAILED'];
  const rows = r.scenarios.map((s) => [
    s.title,
    `${secs(s.away.vipMs)} → ${s.away.to}`,
    secs(s.away.apiGapMs) + (s.away.recovered ? '' : ' (not answering)'),
    `${s.away.failed}/${s.away.probes}`,
    `${secs(s.back.vipMs)} → ${s.back.to}`,
    secs(s.back.apiGapMs) + (s.back.recovered ? '' : ' (not answering)'),
    `${s.back.failed}/${s.back.probes}`,
  ]);
  const widths = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: string[]) => cells.map((s, c) => (c === cells.length - 1 ? s : s.padEnd(widths[c]!))).join('  ');
  if (rows.length > 0) out.push(line(head), ...rows.map(line), '');
  out.push('VIP MOVED / VIP BACK: from the stop / start command until the VIP is on that master (measured here, ± one SSH round trip).');
  out.push('API GAP: longest time without an answer through the VIP, on the prober\'s clock; FAILED: failed probes / probes.');
  out.push('');
  if (r.error) out.push(`drill stopped: ${r.error}`);
  out.push(
    r.restored
      ? `cluster left as found: VIP on ${roles.holder}, keepalived and haproxy active on every master, every apiserver UP (exit ${r.exitCode})`
      : `!! the cluster was NOT found as before after the drill: run kha-deploy status (exit ${r.exitCode})`,
  );
  return out.join('\n');
}
