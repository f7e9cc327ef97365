// `kha-deploy verify` without --failover: the final check of a deploy, once, read-only (no lock):
// the VIP on exactly the expected master, kubectl through the VIP from every master, each master's
// own haproxy serving with every apiserver UP and keepalived ready to take over.
import { waitForGate } from '../gates/wait.js';
import type { Remote } from '../types.js';
import type { ReadOnlyContext } from './common.js';

export interface VerifyReport {
  ok: boolean;
  exitCode: number;
  inventory: string;
  vip: string;
  /** Who holds the VIP ('' when nobody was expected to, under --limit). */
  holder: string;
  /** The master the VIP must be on (undefined: any one, as with vrrp_preempt=false or the primary outside --limit). */
  expectedHolder?: string;
  /** Masters kubectl answered through the VIP from. */
  kubectlFrom: string[];
  serverVersion?: string;
  elapsedMs: number;
}

/** Default wait: a healthy cluster passes at the first look; a VIP moving right now gets a few seconds. */
export const VERIFY_TIMEOUT_MS = 15_000;

export async function verifyGates(ctx: ReadOnlyContext, timeoutMs = VERIFY_TIMEOUT_MS): Promise<VerifyReport> {
  const { spec } = ctx;
  const hosts = spec.order.flatMap((n) => ctx.hosts.filter((h) => h.name === n));
  const remotes: Remote[] = [];
  try {
    for (const h of hosts) remotes.push(await ctx.connect(h));
    const names = hosts.map((h) => h.name);
    const expectedHolder = names.includes(spec.primary) && spec.vrrpPreempt !== false ? spec.primary : undefined;
    const passed = await waitForGate({
      spec,
      gate: 'verify',
      host: expectedHolder ?? names[0]!,
      remotes,
      expectedHolder,
      requireHolder: spec.vrrpPreempt === false,
      kubectlOn: names,
      health: { hosts: names, probes: new Map(hosts.map((h) => [h.name, { address: h.address, vipPort: spec.vipPort, monitorPort: spec.haproxyMonitorPort }])) },
      timeoutMs,
      intervalMs: 1000,
      emit: ctx.emit,
      signal: ctx.signal,
    });
    return {
      ok: true,
      exitCode: 0,
      inventory: spec.file,
      vip: spec.vip,
      holder: passed.holder,
      ...(expectedHolder ? { expectedHolder } : {}),
      kubectlFrom: names,
      ...(passed.serverVersion ? { serverVersion: passed.serverVersion } : {}),
      elapsedMs: passed.elapsedMs,
    };
  } finally {
    await Promise.all(remotes.map((r) => r.close().catch(() => undefined)));
  }
}

export function verifyText(r: VerifyReport): string {
  const where = r.holder ? `the VIP ${r.vip} is on ${r.holder}${r.expectedHolder === r.holder ? ' (the primary)' : ''}` : `no master in this run holds the VIP ${r.vip} (the primary is outside --limit)`;
  return [
    `verify ${r.inventory}: PASSED`,
    `  ${where}, and on no other master`,
    `  kubectl through the VIP answers from ${r.kubectlFrom.join(', ')}${r.serverVersion ? ` (Server Version ${r.serverVersion})` : ''}`,
    "  every master's own haproxy serves, sees every apiserver UP, and its keepalived can take over (no FAULT)",
    `  checked in ${(r.elapsedMs / 1000).toFixed(1)} s (exit 0)`,
  ].join('\n');
}
