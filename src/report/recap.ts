// The final recap: per host ok/changed/unreachable/failed, the gates that passed, and who held the
// VIP at the last observation (pure).
import type { GateRecord, RolloutResult } from '../runner/rollout.js';
import type { ClusterSpec, HostRecap } from '../types.js';

export interface RunSummary {
  ok: boolean;
  exitCode: number;
  inventory: string;
  primary: string;
  primaryReason: string;
  order: string[];
  vip: string;
  /** Who held the VIP at the last observation (several: split brain); null when the run observed nothing. */
  vipHolders: string[] | null;
  /** Which observation that was ('facts', or a gate and its host). */
  vipSeenAt: string | null;
  hosts: HostRecap[];
  gates: GateRecord[];
  /** Formatted error, secrets masked; absent on success. */
  error?: string;
  durationMs: number;
}

export function summarize(spec: ClusterSpec, result: Pick<RolloutResult, 'recap' | 'vipHolders' | 'vipSeenAt' | 'gates'>, exitCode: number, durationMs: number, error?: string): RunSummary {
  return {
    ok: exitCode === 0,
    exitCode,
    inventory: spec.file,
    primary: spec.primary,
    primaryReason: spec.primaryReason,
    order: spec.order,
    vip: spec.vip,
    vipHolders: result.vipHolders ?? null,
    vipSeenAt: result.vipSeenAt ?? null,
    hosts: result.recap,
    gates: result.gates,
    ...(error === undefined ? {} : { error }),
    durationMs,
  };
}

/** The VIP line: what the last observation saw, never an earlier one. */
export function vipLine(s: Pick<RunSummary, 'vip' | 'vipHolders' | 'vipSeenAt' | 'primary'>): string {
  const h = s.vipHolders;
  if (h === null) return `VIP ${s.vip}: not observed (the run stopped before it could read every master)`;
  const at = s.vipSeenAt ? ` (last seen at ${s.vipSeenAt})` : '';
  if (h.length === 0) return `VIP ${s.vip} is on no master${at}`;
  if (h.length > 1) return `VIP ${s.vip}: SPLIT BRAIN, on ${h.length} masters at once: ${h.join(', ')}${at}`;
  return `VIP ${s.vip} is on ${h[0]}${h[0] === s.primary ? ', the primary' : ''}${at}`;
}

export function recapText(s: RunSummary): string {
  const w = Math.max(...s.hosts.map((h) => h.host.length), 4);
  const lines = ['', 'RECAP'];
  for (const h of s.hosts) {
    lines.push(`  ${h.host.padEnd(w)}  ok=${h.ok}  changed=${h.changed}  unreachable=${h.unreachable}  failed=${h.failed}`);
  }
  lines.push(vipLine(s));
  lines.push(s.ok ? `converged in ${(s.durationMs / 1000).toFixed(1)}s` : `FAILED after ${(s.durationMs / 1000).toFixed(1)}s (exit ${s.exitCode})`);
  return lines.join('\n');
}
