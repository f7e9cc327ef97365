// Issue 9: one kha-deploy run on the lab measured from the outside: a probe loop through the VIP inside
// a non-holder and the VIP traced from the kernel's address events in every host (test/helpers/failover.ts).
// Used by test/e2e/change.test.ts and bench/change.bench.ts.
import { runCli, type CliResult } from './cli.js';
import { describeProbe, startProbe, traceVip, type ProbeReport, type VipEvent } from './failover.js';
import { deployArgs } from './inventory.js';

export interface ChangeFigures {
  scenario: string;
  exit: number | null;
  seconds: number;
  probes: number;
  failed: number;
  longestGapMs: number;
  /** `old → new` per VIP move. */
  moves: string[];
  /** Hosts gated, in order (the final check left out). */
  order: string[];
  /** Most masters holding the VIP at the same time in the trace (2+: a split brain). */
  maxHolders?: number;
  /** Longest time no master held the VIP (ms, kernel timestamps; a managed instance move drops it once). */
  vipAbsentMs?: number;
}

/** Most simultaneous holders and the longest time without any, from the traced events (one kernel: one monotonic clock). */
export function vipOverlap(events: readonly VipEvent[]): { maxHolders: number; vipAbsentMs: number; overlapMs: number } {
  const sorted = [...events].sort((a, b) => a.atMs - b.atMs);
  const on = new Set<string>();
  let max = 0;
  // Longest time with 2+ holders: a VRRP handover by preemption overlaps for a moment (the new MASTER adds the VIP before the old one drops it).
  let overlapSince: number | undefined;
  let overlap = 0;
  let absentSince: number | undefined;
  let absent = 0;
  const seen = new Set<string>();
  for (const e of sorted) {
    const first = !seen.has(e.host);
    seen.add(e.host);
    if (e.present) on.add(e.host);
    else on.delete(e.host);
    max = Math.max(max, on.size);
    if (on.size > 1 && overlapSince === undefined) overlapSince = e.atMs;
    if (on.size <= 1 && overlapSince !== undefined) {
      overlap = Math.max(overlap, e.atMs - overlapSince);
      overlapSince = undefined;
    }
    // The first event of each host is its state when the trace started, not a change.
    if (on.size === 0 && absentSince === undefined && !first) absentSince = e.atMs;
    if (on.size > 0 && absentSince !== undefined) {
      absent = Math.max(absent, e.atMs - absentSince);
      absentSince = undefined;
    }
  }
  return { maxHolders: max, vipAbsentMs: Math.round(absent), overlapMs: Math.round(overlap) };
}

/**
 * VIP moves from the traced events: each time a host that was not the last holder gains the VIP
 * (the old holder may drop it a moment before the new one adds it: still one move).
 */
export function vipMoves(events: readonly VipEvent[]): string[] {
  const seen = new Set<string>();
  let last: string | undefined;
  const out: string[] = [];
  for (const e of events) {
    const first = !seen.has(e.host);
    seen.add(e.host);
    if (!e.present) continue;
    if (!first && last !== undefined && e.host !== last) out.push(`${last} → ${e.host}`);
    last = e.host;
  }
  return out;
}

/** Deploy `inventory` (JSON output) while probing from `probeFrom`; the figures, the run and the probe report. */
export async function measureChange(scenario: string, inventory: string, probeFrom = 'master3'): Promise<{ figures: ChangeFigures; run: CliResult; report: ProbeReport; probeText: string }> {
  const trace = await traceVip();
  const probe = await startProbe(probeFrom, { intervalMs: 50, timeoutMs: 1000 });
  await probe.waitForOk(3, { timeoutMs: 10_000 });
  const t0 = Date.now();
  const run = await runCli(deployArgs(inventory, '--output', 'json'));
  const seconds = (Date.now() - t0) / 1000;
  // A little after the run: a move the run caused but did not wait for would show here.
  await new Promise((res) => setTimeout(res, 1500));
  const report = await probe.stop();
  const events = await trace.stop();
  const figures: ChangeFigures = {
    scenario,
    exit: run.code,
    seconds: Math.round(seconds * 10) / 10,
    probes: report.total,
    failed: report.failed,
    longestGapMs: report.longestGapMs,
    moves: vipMoves(events),
    order: ((run.json?.gates ?? []) as { host: string; gate: string }[]).filter((g) => g.gate !== 'final-check').map((g) => g.host),
    ...(({ maxHolders, vipAbsentMs }) => ({ maxHolders, vipAbsentMs }))(vipOverlap(events)),
  };
  return { figures, run, report, probeText: report.failed > 0 ? describeProbe(report) : '' };
}
