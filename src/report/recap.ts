// The final recap: per host ok/changed/failed and who holds the VIP (pure).
import type { ClusterSpec, HostRecap } from '../types.js';

export interface RunSummary {
  ok: boolean;
  exitCode: number;
  inventory: string;
  primary: string;
  primaryReason: string;
  order: string[];
  vip: string;
  vipHolder: string | null;
  hosts: HostRecap[];
  /** Formatted error, secrets masked; absent on success. */
  error?: string;
  durationMs: number;
}

export function summarize(
  spec: ClusterSpec,
  recap: HostRecap[],
  vipHolder: string,
  exitCode: number,
  durationMs: number,
  error?: string,
): RunSummary {
  return {
    ok: exitCode === 0,
    exitCode,
    inventory: spec.file,
    primary: spec.primary,
    primaryReason: spec.primaryReason,
    order: spec.order,
    vip: spec.vip,
    vipHolder: vipHolder || null,
    hosts: recap,
    ...(error === undefined ? {} : { error }),
    durationMs,
  };
}

export function recapText(s: RunSummary): string {
  const w = Math.max(...s.hosts.map((h) => h.host.length), 4);
  const lines = ['', 'RECAP'];
  for (const h of s.hosts) {
    lines.push(`  ${h.host.padEnd(w)}  ok=${h.ok}  changed=${h.changed}  failed=${h.failed}`);
  }
  lines.push(
    s.vipHolder ? `VIP ${s.vip} is on ${s.vipHolder}${s.vipHolder === s.primary ? ' (the primary)' : ''}` : `VIP ${s.vip}: not confirmed on any master`,
  );
  lines.push(s.ok ? `converged in ${(s.durationMs / 1000).toFixed(1)}s` : `FAILED after ${(s.durationMs / 1000).toFixed(1)}s (exit ${s.exitCode})`);
  return lines.join('\n');
}
