// The failover drill (I/O): under the run lock on every master, refuse an unhealthy cluster, then for
// keepalived and for haproxy: stop it on the holder while a probe loop runs through the VIP from a
// non-holder, time the VIP's move and the API gap, start it again, time the way back. Whatever
// happens (an error, Ctrl-C), stopped units are started again and the cluster is checked as found.
import { HostStepError, InterruptedError, KhaError } from '../errors.js';
import { journalTail } from '../journal.js';
import { lockAndPlan, owner, toKhaError } from '../runner/rollout.js';
import { readStatus, statusReport, unreadable, type HostStatusInput, type StatusReport } from '../commands/status.js';
import type { HeldCommand, HostSpec, ManagedUnit, Remote, RemoteResult, RunContext } from '../types.js';
import { DRILL_SCENARIOS, drillRoles, parseProbeLines, probeFigures, type DrillLeg, type DrillReport, type DrillRoles, type DrillScenario, type DrillScenarioResult } from './figures.js';
import { DEFAULT_PROBE, apiAnswersScript, deadmanUnit, handBackScript, probeScript, probeStopScript, startUnitScript, stopUnitScript, watchVipScript, type ProbeSettings } from './scripts.js';

/** The drill could not start: the cluster is not healthy, or it cannot be drilled. Nothing was changed. */
export class DrillRefused extends KhaError {
  readonly exitCode = 1;
}

export interface DrillOptions extends RunContext {
  scenarios?: readonly DrillScenario[];
  probe?: ProbeSettings;
  /** Bounds (ms); the defaults suit real clusters, tests may shorten them. */
  limits?: Partial<DrillLimits>;
}

export interface DrillLimits {
  /** The VIP must reach the next master within this. */
  moveMs: number;
  /** ... and come back within this (plus preempt_delay). */
  backMs: number;
  /** The API must answer through the VIP within this after the VIP arrived. */
  apiMs: number;
  /** Every master healthy again (backends UP, VRRP settled) within this. */
  healthyMs: number;
  /** Quiet probing before each stop/start, so the figures show the API answering first. */
  baselineMs: number;
  /** A stopped unit starts itself again after this if the drill never comes back (dead-man timer). */
  deadmanSeconds: number;
}

const DEFAULT_LIMITS: DrillLimits = { moveMs: 30_000, backMs: 60_000, apiMs: 30_000, healthyMs: 90_000, baselineMs: 1_000, deadmanSeconds: 180 };
/** Bounds of the commands that put things back: they run after Ctrl-C too, so they must end. */
const RESTORE_TIMEOUT_MS = 30_000;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new InterruptedError('interrupted'));
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new InterruptedError('interrupted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

interface Conn {
  spec: HostSpec;
  remote: Remote;
  held?: HeldCommand;
}

export async function runDrill(opts: DrillOptions): Promise<DrillReport> {
  const { spec, playbook, emit } = opts;
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const probe = opts.probe ?? DEFAULT_PROBE;
  const say = (message: string) => emit({ type: 'phase', phase: 'drill', message });
  const names = spec.order.filter((n) => opts.hosts.some((h) => h.name === n));
  if (names.length < spec.order.length) throw new DrillRefused('the failover drill needs every master: run it without --limit');
  if (names.length < 2) throw new DrillRefused('the failover drill needs at least two masters');
  const conns = new Map<string, Conn>();
  const stopped: { host: string; unit: ManagedUnit }[] = [];
  const probes = new Set<{ host: string; id: string }>();
  let roles: DrillRoles | undefined;
  const results: DrillScenarioResult[] = [];
  let failure: unknown;
  const signalOpt = opts.signal ? { signal: opts.signal } : {};
  const remote = (host: string) => conns.get(host)!.remote;
  const run = async (host: string, script: string, label: string, timeoutMs: number, restoring = false): Promise<RemoteResult> => {
    try {
      return await remote(host).run(script, { label, timeoutMs, ...(restoring ? {} : signalOpt) });
    } catch (err) {
      throw toKhaError(host, 'drill', err);
    }
  };
  const status = async (signal?: AbortSignal): Promise<StatusReport> => {
    const inputs = await Promise.all(
      names.map(async (n): Promise<HostStatusInput> => {
        try {
          return await readStatus(remote(n), spec, playbook, conns.get(n)!.spec, signal);
        } catch (err) {
          if (signal?.aborted) throw err;
          return unreadable(n, err);
        }
      }),
    );
    return statusReport(spec, inputs);
  };
  /** Polls the status until it is healthy with the VIP on `holder`; returns the last report. */
  const settle = async (holder: string, timeoutMs: number, signal?: AbortSignal): Promise<{ ok: boolean; report: StatusReport }> => {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const report = await status(signal);
      const ok = report.healthy && report.vipHolders.length === 1 && report.vipHolders[0] === holder;
      if (ok || Date.now() >= end) return { ok, report };
      await sleep(1000, signal);
    }
  };

  try {
    say(`connecting to ${names.join(', ')} and taking the run lock`);
    for (const n of names) {
      const h = opts.hosts.find((x) => x.name === n)!;
      conns.set(n, { spec: h, remote: await opts.connect(h) });
    }
    await Promise.all(
      names.map(async (n) => {
        const c = conns.get(n)!;
        const { held } = await lockAndPlan(c.remote, c.spec, spec, playbook, {
          owner: owner(),
          preflight: false,
          lockedHint: 'wait for that run to end (or --break-lock with kha-deploy deploy if it is gone), then drill again',
          ...signalOpt,
        });
        c.held = held;
      }),
    );
    const before = await status(opts.signal);
    if (!before.healthy || before.vipHolders.length !== 1) {
      throw new DrillRefused(`refusing to drill: the cluster is not healthy now (nothing was changed):\n  - ${before.reasons.join('\n  - ') || 'nobody holds the VIP'}`, {
        hint: 'kha-deploy status shows the same; fix it (a deploy converges drift), then run the drill again',
      });
    }
    roles = drillRoles(names, before.vipHolders[0]!)!;
    say(`VIP on ${roles.holder}; next in line ${roles.next}; probing through the VIP from ${roles.prober}`);
    for (const scenario of opts.scenarios ?? DRILL_SCENARIOS) {
      results.push(await drillOne(scenario, roles));
    }
  } catch (err) {
    failure = err;
  }

  // Put back what the drill stopped, whatever happened; a second Ctrl-C is the CLI's to handle.
  const restoreProblems: string[] = [];
  for (const p of [...probes]) {
    await run(p.host, probeStopScript(p.id), 'stop the probe loop', RESTORE_TIMEOUT_MS, true).catch(() => undefined);
  }
  for (const s of stopped.splice(0)) {
    say(`restoring: starting ${s.unit} on ${s.host}`);
    const res = await run(s.host, startUnitScript(s.unit), `start ${s.unit}`, RESTORE_TIMEOUT_MS, true).catch((err: unknown) => err);
    if (!res || res instanceof Error || (res as RemoteResult).code !== 0) {
      restoreProblems.push(`${s.unit} on ${s.host} did not start again (its dead-man timer ${deadmanUnit(s.unit)}.timer retries within ${limits.deadmanSeconds} s): ${res instanceof Error ? res.message : (res as RemoteResult | undefined)?.stderr.trim() ?? ''}`);
    }
  }
  let restored = false;
  if (roles && conns.size === names.length && restoreProblems.length === 0) {
    try {
      let end = await settle(roles.holder, limits.healthyMs);
      const holderNow = end.report.vipHolders.length === 1 ? end.report.vipHolders[0]! : undefined;
      if (!end.ok && spec.vrrpPreempt === false && holderNow && holderNow !== roles.holder) {
        // nopreempt keeps the VIP where it went: hand it back once, deliberately.
        await run(holderNow, handBackScript(), 'restart keepalived to hand the VIP back', RESTORE_TIMEOUT_MS, true);
        end = await settle(roles.holder, limits.healthyMs);
      }
      restored = end.ok;
      if (!end.ok) restoreProblems.push(`after the drill: ${end.report.reasons.join('; ') || `the VIP is on ${end.report.vipHolders.join(', ') || 'nobody'}, not ${roles.holder}`}`);
    } catch (err) {
      restoreProblems.push(`could not check the cluster after the drill: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  for (const c of conns.values()) await c.held?.release().catch(() => undefined);
  await Promise.all([...conns.values()].map((c) => c.remote.close().catch(() => undefined)));

  if (failure instanceof DrillRefused || !roles) {
    throw failure ?? new DrillRefused('the drill did not start');
  }
  const error = failure === undefined ? undefined : failure instanceof Error ? failure.message : String(failure);
  const ok = failure === undefined && restored;
  const report: DrillReport = {
    ok,
    exitCode: failure instanceof InterruptedError ? 130 : ok ? 0 : 1,
    inventory: spec.file,
    vip: spec.vip,
    roles,
    probe,
    scenarios: results,
    restored,
    ...(error !== undefined || restoreProblems.length > 0 ? { error: [error, ...restoreProblems].filter(Boolean).join('; ') } : {}),
  };
  if (failure !== undefined) throw new DrillFailed(report, failure);
  if (!restored) throw new DrillFailed(report, new HostStepError(roles.holder, 'drill-restore', restoreProblems.join('; '), { hint: 'run kha-deploy status, then kha-deploy deploy to converge' }));
  return report;

  async function leg(
    scenario: DrillScenario,
    r: DrillRoles,
    dir: 'away' | 'back',
  ): Promise<DrillLeg> {
    const unit: ManagedUnit = scenario;
    const to = dir === 'away' ? r.next : r.holder;
    const id = `${process.pid}-${Date.now().toString(36)}-${dir}`;
    const probeRef = { host: r.prober, id };
    probes.add(probeRef);
    const maxSeconds = (limits.baselineMs + limits.backMs + limits.apiMs + limits.healthyMs + spec.vrrpPreemptDelay * 1000) / 1000 + 30;
    const probing = run(r.prober, probeScript(spec, id, probe, maxSeconds), 'probe loop through the VIP', maxSeconds * 1000 + 10_000);
    // An early rejection must not go unhandled while the leg waits on other hosts.
    probing.catch(() => undefined);
    await sleep(limits.baselineMs, opts.signal);
    const watchMs = dir === 'away' ? limits.moveMs : limits.backMs + spec.vrrpPreemptDelay * 1000;
    const watching = run(to, watchVipScript(spec, 'on', watchMs), `wait for the VIP on ${to}`, watchMs + 10_000);
    watching.catch(() => undefined);
    const t0 = Date.now();
    if (dir === 'away') {
      say(`${scenario}: stopping ${unit} on ${r.holder} (a timer on the host starts it again within ${limits.deadmanSeconds} s if this run dies)`);
      const res = await run(r.holder, stopUnitScript(unit, limits.deadmanSeconds), `stop ${unit}`, RESTORE_TIMEOUT_MS);
      if (res.code !== 0) throw new HostStepError(r.holder, 'drill-stop', `could not stop ${unit} under a dead-man timer (exit ${res.code}); nothing was stopped`, { seen: res.stderr.trim(), hint: 'systemd-run (systemd ≥ 218) is needed on the masters' });
      stopped.push({ host: r.holder, unit });
    } else {
      say(`${scenario}: starting ${unit} on ${r.holder} again`);
      const res = await run(r.holder, startUnitScript(unit), `start ${unit}`, RESTORE_TIMEOUT_MS);
      if (res.code !== 0) {
        throw new HostStepError(r.holder, 'drill-start', `${unit} did not start again (exit ${res.code})`, {
          seen: `${res.stderr.trim()}\n--- journalctl -u ${unit}:\n${await journalTail(remote(r.holder), unit, 20)}`,
          hint: `read the journal above; the dead-man timer ${deadmanUnit(unit)}.timer on ${r.holder} tries once more`,
        });
      }
      stopped.splice(stopped.findIndex((s) => s.host === r.holder && s.unit === unit), 1);
      if (spec.vrrpPreempt === false) {
        // Without preemption the VIP stays on the interim holder: once the holder can serve again, hand it back.
        const healthy = await settle(r.next, limits.healthyMs, opts.signal);
        if (!healthy.ok) throw new HostStepError(r.holder, 'drill-start', `${unit} runs again but the cluster did not settle: ${healthy.report.reasons.join('; ')}`);
        await run(r.next, handBackScript(), 'restart keepalived to hand the VIP back', RESTORE_TIMEOUT_MS);
      }
    }
    const watched = await watching;
    const vipMs = Date.now() - t0;
    if (watched.code !== 0) {
      const journal = await journalTail(remote(to), 'keepalived', 20);
      throw new HostStepError(to, `drill-${dir}`, `the VIP did not reach ${to} within ${Math.round(watchMs / 1000)} s after ${unit} was ${dir === 'away' ? 'stopped' : 'started again'} on ${r.holder}`, {
        seen: `journalctl -u keepalived on ${to}:\n${journal}`,
        hint: dir === 'away' ? `a failure of ${unit} on ${r.holder} is not a failover yet: read the journal, check VRRP between the masters, then run the drill again` : 'read the journal; kha-deploy status shows where the VIP is',
      });
    }
    say(`${scenario}: VIP on ${to} after ${(vipMs / 1000).toFixed(2)} s; waiting for the API through the VIP`);
    const api = await run(r.prober, apiAnswersScript(spec, probe, limits.apiMs), 'wait for the API through the VIP', limits.apiMs + 10_000);
    if (api.code !== 0) {
      throw new HostStepError(r.prober, `drill-${dir}`, `the VIP is on ${to}, but the API did not answer through it from ${r.prober} within ${Math.round(limits.apiMs / 1000)} s (last HTTP code ${api.stdout.trim() || '000'})`, {
        hint: `check haproxy on ${to} (kha-deploy status shows its view of the apiservers)`,
      });
    }
    // A probe sent into the move may wait its whole timeout: give the loop time to show answers again.
    await sleep(probe.timeoutMs + 1000, opts.signal);
    if (dir === 'back') {
      const healthy = await settle(r.holder, limits.healthyMs, opts.signal);
      if (!healthy.ok) throw new HostStepError(r.holder, 'drill-back', `the cluster did not become healthy again: ${healthy.report.reasons.join('; ')}`, { hint: 'kha-deploy status shows the same' });
    }
    await run(r.prober, probeStopScript(id), 'stop the probe loop', RESTORE_TIMEOUT_MS);
    const samples = parseProbeLines((await probing).stdout);
    probes.delete(probeRef);
    return { to, vipMs, ...probeFigures(samples) };
  }

  async function drillOne(scenario: DrillScenario, r: DrillRoles): Promise<DrillScenarioResult> {
    const away = await leg(scenario, r, 'away');
    const back = await leg(scenario, r, 'back');
    return { scenario, title: `${scenario} stopped on ${r.holder}`, away, back };
  }
}

/** The drill stopped on an error or Ctrl-C after it had started: the report (figures so far, restored or not) and the cause. */
export class DrillFailed extends KhaError {
  readonly exitCode: number;
  constructor(
    readonly report: DrillReport,
    readonly reason: unknown,
  ) {
    super(reason instanceof Error ? reason.message : String(reason), reason instanceof KhaError && reason.hint ? { hint: reason.hint, cause: reason } : { cause: reason });
    this.exitCode = report.exitCode === 0 ? 1 : report.exitCode;
  }
}
