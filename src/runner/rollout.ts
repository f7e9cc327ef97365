// The pipeline: connect → lock + facts → plan → packages (parallel) → per host in order: re-read
// facts, apply, gate → final check. Emits RunEvents; never prints.
import { createHash, randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { ConnectError, DeadlineError, GateError, HostKeyError, HostStepError, InterruptedError, KhaError, ManyErrors } from '../errors.js';
import { HostApplier } from '../apply.js';
import { FactsParseError, factsScript, parseFacts } from '../facts.js';
import { preflightReadyz, readyzProbeScript } from '../gates/preflight.js';
import { preflightSubnet } from '../gates/subnet.js';
import { preflightVipOwner, vipOwnerProbeScript } from '../gates/vip-owner.js';
import { masterAddresses, preflightVrid, startedListen, vridCollectScript, vridListenScript } from '../gates/vrid-in-use.js';
import { HOLD_UNIT, holdVipScript, releaseVipScript } from '../vip-hold.js';
import { waitForGate } from '../gates/wait.js';
import { planHost, vipInterface } from '../plan.js';
import { changeOrder, type OrderStep } from '../plan-order.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { Playbook } from '../playbook.js';
import type { ClusterSpec, HeldCommand, HostFacts, HostPlan, HostRecap, HostSpec, Operation, PlannedStep, Remote, RunContext, StepStatus } from '../types.js';
import { READY_MARK, brokenLockOwner, lockRefusal, lockScript } from './lock.js';
import { gateTiming } from './timing.js';

/** After Ctrl-C a running change gets this long to finish before it is ended on the host. */
export const COMMAND_GRACE_MS = 1000;

/** A signal that follows `signal` COMMAND_GRACE_MS later: a change in flight gets that long to finish after Ctrl-C. */
export function graceSignal(signal: AbortSignal | undefined): { signal: AbortSignal; dispose(): void } {
  const c = new AbortController();
  const onAbort = () => setTimeout(() => c.abort(), COMMAND_GRACE_MS).unref();
  signal?.addEventListener('abort', onAbort, { once: true });
  return { signal: c.signal, dispose: () => signal?.removeEventListener('abort', onAbort) };
}

/**
 * The error a run ends with: after Ctrl-C a host failure is still reported as such; anything else
 * (an aborted wait, interrupted commands only) is the interrupt.
 */
export function runError(err: unknown, signal: AbortSignal | undefined, interrupted: () => KhaError): unknown {
  const onlyInterrupts = err instanceof InterruptedError || (err instanceof ManyErrors && err.errors.every((e) => e instanceof InterruptedError));
  return signal?.aborted && (!(err instanceof KhaError) || onlyInterrupts) ? interrupted() : err;
}

/** Deadline for reading facts (the lock wait is not part of it: a held lock fails at once). */
export const FACTS_TIMEOUT_MS = 60_000;

export interface RolloutOptions extends RunContext {
  /** --break-lock: end a run lock left by another run (its holder is named in a warning). */
  breakLock?: boolean;
}

/** One gate as it ended. */
export interface GateRecord {
  host: string;
  gate: string;
  ok: boolean;
  elapsedMs: number;
  holder?: string;
  serverVersion?: string;
}

export interface RolloutResult {
  recap: HostRecap[];
  /** Who held the VIP at the last observation this run made (facts or a gate); undefined when none was made. */
  vipHolders?: string[];
  /** Which observation that was: 'facts', or the gate id and its host. */
  vipSeenAt?: string;
  gates: GateRecord[];
  error?: unknown;
}

interface HostState {
  spec: HostSpec;
  remote?: Remote;
  lock?: HeldCommand;
  facts?: HostFacts;
  plan?: HostPlan;
  /** Salted hash of the auth_pass in the host's keepalived.conf (see authProbeScript). */
  authHash?: string;
  statuses: StepStatus[];
  unreachable: boolean;
}

/** Any error as a KhaError naming the host and step; output the parser could not read is shown, never a stack trace. */
export function toKhaError(host: string, step: string, err: unknown): KhaError {
  if (err instanceof KhaError) return err;
  if (err instanceof FactsParseError) {
    return new HostStepError(host, step, `could not read what ${host} printed: ${err.problem}`, {
      seen: err.lines.join('\n'),
      hint: 'a login script that prints (~/.bashrc, motd) is fine; output cut short means a missing tool or a dropped connection: run the command with -v and compare',
    });
  }
  return new HostStepError(host, step, err instanceof Error ? err.message : String(err), { cause: err });
}

export async function runRollout(opts: RolloutOptions): Promise<RolloutResult> {
  const { spec, playbook, emit } = opts;
  const order = spec.order.filter((n) => opts.hosts.some((h) => h.name === n));
  const states = new Map<string, HostState>(order.map((n) => [n, { spec: opts.hosts.find((h) => h.name === n)!, statuses: [], unreachable: false }]));
  const all = () => [...states.values()];
  const remotes = () => all().flatMap((s) => (s.remote ? [s.remote] : []));
  const interrupted = () => new InterruptedError('interrupted: stopped before the next step; no file is half-written, rerun to converge');
  const checkAbort = () => {
    if (opts.signal?.aborted) throw interrupted();
  };
  // Changes get a moment to finish after Ctrl-C; reads and waits stop at once.
  const grace = graceSignal(opts.signal);
  const signalOpt = opts.signal ? { signal: opts.signal } : {};
  // The auth_pass on each master is compared through a hash salted per run: neither the pass nor a reusable hash leaves the host.
  const authSalt = newAuthSalt();
  const gates: GateRecord[] = [];
  let seen: { holders: string[]; at: string } | undefined;
  let error: unknown;

  /**
   * The VIP must be on the primary (when it is in this run); kubectl must answer through it on `kubectlOn`;
   * the masters in `ready` (their keepalived and haproxy run our configs) must be able to take over.
   */
  const gate = async (role: 'primary' | 'backup' | 'final', id: string, host: string, kubectlOn: string[], ready: string[], expect?: { holder: string | undefined; vip?: string }) => {
    const primary = states.get(spec.primary);
    // Where the VIP must be: the step's expectation (a running cluster: the holder, or where a deliberate move takes it), else the primary.
    const expectedHolder = expect ? expect.holder : primary && spec.vrrpPreempt !== false ? spec.primary : undefined;
    const holderState = expectedHolder ? states.get(expectedHolder) : undefined;
    const t = gateTiming(playbook, role);
    const probes = new Map(all().map((s) => [s.spec.name, { address: s.spec.address, vipPort: spec.vipPort, monitorPort: spec.haproxyMonitorPort }]));
    const started = Date.now();
    try {
      const passed = await waitForGate({
        // A vip change: until the holder's step, the old instance holds the old VIP, and kubectl answers through it.
        spec: expect?.vip ? { ...spec, vip: expect.vip } : spec,
        gate: id,
        host,
        remotes: remotes(),
        // Without preemption the VIP stays wherever it went: any one holder is right.
        expectedHolder: spec.vrrpPreempt !== false ? expectedHolder : undefined,
        requireHolder: spec.vrrpPreempt === false,
        ...(expectedHolder && expectedHolder !== spec.primary ? { expectedLabel: `${expectedHolder}, which holds it until the primary ${spec.primary} takes it over` } : {}),
        health: { hosts: ready, probes },
        expectedInterface: role !== 'backup' && holderState?.facts ? vipInterface(holderState.spec, holderState.facts) : undefined,
        kubectlOn,
        vipFirst: role === 'primary',
        timeoutMs: t.timeoutMs,
        intervalMs: t.intervalMs,
        emit,
        interfaces: holderState?.facts?.interfaces,
        signal: opts.signal,
      });
      seen = { holders: passed.holder ? [passed.holder] : [], at: `${id} (${host})` };
      gates.push({ host, gate: id, ok: true, elapsedMs: passed.elapsedMs, holder: passed.holder, ...(passed.serverVersion ? { serverVersion: passed.serverVersion } : {}) });
      const secs = (passed.elapsedMs / 1000).toFixed(1);
      const where = passed.holder ? `VIP on ${passed.holder} after ${secs} s` : `no master holds the VIP (the primary is outside --limit), after ${secs} s`;
      emit({
        type: 'gate-pass',
        host,
        gate: id,
        elapsedMs: passed.elapsedMs,
        holder: passed.holder,
        ...(passed.serverVersion ? { serverVersion: passed.serverVersion } : {}),
        message: `${where}; kubectl through the VIP: ${passed.serverVersion ?? 'answered'}`,
      });
      // A passed check counts once on every master it checked (the final check: all of them).
      for (const h of kubectlOn) states.get(h)?.statuses.push('ok');
    } catch (err) {
      if (err instanceof GateError) {
        if (err.holders) seen = { holders: err.holders, at: `${id} (${host})` };
        gates.push({ host, gate: id, ok: false, elapsedMs: Date.now() - started });
        for (const h of err.hosts) states.get(h)?.statuses.push('failed');
      } else if (!opts.signal?.aborted) {
        // A wait cut short by Ctrl-C is not a failed check; a lost connection belongs to its own host.
        markFailure(states.get(err instanceof HostStepError ? err.host : host), err);
      }
      throw err;
    }
  };

  try {
    emit({ type: 'phase', phase: 'connect', message: `connecting to ${order.join(', ')}` });
    await settleAll(
      all().map(async (s) => {
        try {
          s.remote = await opts.connect(s.spec);
        } catch (err) {
          s.unreachable = true;
          throw err;
        }
      }),
      (i, err) => toKhaError(all()[i]!.spec.name, 'connect', err),
      'cannot reach every master: no host was changed',
    );
    checkAbort();

    emit({ type: 'phase', phase: 'facts', message: 'locking and reading facts' });
    await settleAll(
      all().map(async (s) => {
        try {
          await lockAndReadFacts(s);
        } catch (err) {
          markFailure(s, err);
          throw err;
        }
      }),
      (i, err) => toKhaError(all()[i]!.spec.name, 'facts', err),
      'cannot start the rollout: no host was changed',
    );
    const factsHolders = all().filter((s) => (s.facts?.vipOn.length ?? 0) > 0).map((s) => s.spec.name);
    seen = { holders: factsHolders, at: 'facts' };
    checkAbort();

    // haproxy will ask every apiserver's /readyz without credentials: refuse now if they would all be DOWN.
    if (spec.haproxyHealthCheck === 'readyz') refuseAs(() => preflightReadyz({ spec, answers: all().map((s) => ({ spec: s.spec, output: s.lock!.output })), emit }));
    // A machine that is not a master already answering for the VIP: keepalived would fight it for the address.
    // An interface without an address in the VIP's subnet: keepalived there could not hold it.
    refuseAs(() => {
      preflightSubnet({ vip: spec.vip, hosts: all().map((s) => ({ name: s.spec.name, iface: vipInterface(s.spec, s.facts!), interfaces: s.facts!.interfaces })) });
      preflightVipOwner({ spec, answers: all().map((s) => ({ spec: s.spec, output: s.lock!.output })), emit });
    });

    // Package installation dominates a first rollout and starts no service (policy-rc.d), so it runs
    // first, on every master in parallel; the playbook requires it to be the first step.
    const needPkgs = all().filter((s) => s.plan!.steps.some((st) => st.id === 'packages' && st.ops.length > 0));
    if (needPkgs.length > 0) {
      emit({ type: 'phase', phase: 'packages', message: `installing packages on ${needPkgs.map((s) => s.spec.name).join(', ')}` });
      await settleAll(
        needPkgs.map(async (s) => {
          const st = s.plan!.steps.find((x) => x.id === 'packages')!;
          await record(s, () => applier(s).step(st));
        }),
        (i, err) => toKhaError(needPkgs[i]!.spec.name, 'packages', err),
        'package installation failed: no configuration was changed',
      );
    }

    // The VRID listen started with the facts ran while the packages were installed: its verdict comes before the first file.
    const listening = all().flatMap((s) => {
      const file = startedListen(s.lock!.output);
      return file ? [{ s, file }] : [];
    });
    const heard = new Map<string, string>();
    await settleAll(
      listening.map(async ({ s, file }) => {
        const r = await s.remote!.run(vridCollectScript(file, spec.advertInt), { label: 'collect the VRRP adverts heard', timeoutMs: 30_000, ...signalOpt });
        heard.set(s.spec.name, r.stdout);
      }),
      (i, err) => toKhaError(listening[i]!.s.spec.name, 'preflight', err),
      needPkgs.length > 0 ? 'reading the VRRP listen failed: no configuration was written (packages were installed)' : 'reading the VRRP listen failed: no host was changed',
    );
    refuseAs(() =>
      preflightVrid({
        vrid: spec.virtualRouterId,
        vip: spec.vip,
        unicast: spec.vrrpUnicast === true,
        answers: all().map((s) => ({ host: s.spec.name, output: heard.get(s.spec.name) ?? s.lock!.output })),
        masterAddrs: masterAddresses(all().map((s) => s.facts!)),
        emit,
        ...(needPkgs.length > 0 ? { installedOn: needPkgs.map((s) => s.spec.name) } : {}),
      }),
    );

    // Primary first on a first deploy; on a running cluster the VIP holder last, with any VIP move planned (src/plan-order.ts).
    const expectedAuth = authHash(authSalt, spec.vrrpAuthPass);
    const co = changeOrder(
      spec,
      all().map((s) => ({ name: s.spec.name, facts: s.facts, plan: s.plan!, authDiffers: authDiffers(s.authHash, s.facts, expectedAuth) })),
    );
    if (co.refusal) {
      const err = new HostStepError(spec.primary, 'preflight', `${co.refusal}; no host was changed`, { hint: 'run without --limit (every master must move to the new instance in the same run), or leave the VRRP settings as they are for now' });
      markFailure(states.get(spec.primary), err);
      throw err;
    }
    const steps = co.steps;
    const done: string[] = [];
    /** Masters whose keepalived this run stopped for an instance move, with the op that starts it on the new instance. */
    const deferredStart = new Map<string, Operation>();
    const unitsTimeoutMs = (playbook.steps.find((x) => x.id === 'units')?.timeoutSeconds ?? 120) * 1000;
    emit({ type: 'phase', phase: 'rollout', message: `rolling out in order ${steps.map((x) => x.host).join(' → ')} (${co.reason})`, order: steps.map((x) => x.host) });
    for (const step of steps) {
      const name = step.host;
      checkAbort();
      const s = states.get(name)!;
      done.push(name);
      const role = name === spec.primary ? 'primary' : 'backup';
      emit({ type: 'host-start', host: name, role });
      const pkgsDone = needPkgs.includes(s);
      let plan = s.plan!;
      let stoppedHere = false;
      if (step.keepalivedStopped && s.facts && s.facts.units.keepalived.active !== 'inactive' && s.facts.units.keepalived.active !== '') {
        // A managed instance move: out of the old instance now, into the new one only after the holder left it.
        checkAbort();
        await record(s, () =>
          applier(s).step(unitsStep('units', `stop keepalived (VRRP instance move: ${co.instanceMove!.changes.join(', ')})`, [{ op: 'run', script: stopKeepalivedScript(), description: 'systemctl stop keepalived' }], unitsTimeoutMs, `the VRRP instance changes; ${name} rejoins when ${co.holder} has left the old one`)),
        );
        stoppedHere = true;
      }
      if (step.moveAwayFirst && s.facts && s.facts.units.keepalived.active === 'active') {
        // The holder's instance is recreated: hand the VIP over first (keepalived's priority-0 advert), confirm it, then change.
        const to = step.moveAwayFirst.to;
        checkAbort();
        await record(s, () =>
          applier(s).step(unitsStep('units', `stop keepalived: its instance is recreated, the VIP moves to ${to} first`, [{ op: 'run', script: stopKeepalivedScript(), description: 'systemctl stop keepalived' }], unitsTimeoutMs, `${name}'s VRRP instance is recreated by this change`)),
        );
        stoppedHere = true;
        await gate('primary', 'vip-moved-away', name, [to], done.filter((n) => n !== name && !deferredStart.has(n)), { holder: to });
      }
      if (stoppedHere || pkgsDone || plan.steps.some((st) => st.ops.length > 0)) {
        // Re-read right before changing: packages just changed the host, or another actor may have.
        await record(s, async () => {
          const res = await s.remote!.run(factsScript(spec, playbook), { label: 'read facts again', timeoutMs: FACTS_TIMEOUT_MS, ...signalOpt });
          if (res.code !== 0) throw new HostStepError(name, 'facts', `reading facts failed (exit ${res.code})`, { seen: res.stderr });
          try {
            s.facts = parseFacts(name, res.stdout, spec.vip);
            plan = planHost(spec, s.spec, s.facts, playbook);
          } catch (err) {
            throw toKhaError(name, 'facts', err);
          }
          return 'skipped';
        }, false);
      }
      if (step.keepalivedStopped) plan = deferKeepalivedStart(plan, name, deferredStart);
      for (const message of plan.warnings) emit({ type: 'warning', host: name, message });
      const hostApplier = applier(s);
      let changed = stoppedHere;
      const held = step.holdVip === true && (s.facts?.vipOn.length ?? 0) > 0 ? await holdVip(s) : undefined;
      let stepDone = false;
      try {
        for (const st of plan.steps) {
          if (st.id === 'packages' && pkgsDone) continue;
          checkAbort();
          changed = (await record(s, () => hostApplier.step(st))) === 'changed' || changed;
        }
        if (step.startAfter && step.startAfter.length > 0) {
          // The holder has left the old instance (its reload deleted it, and the VIP with it): the others join the new one now, together.
          const starting = step.startAfter.filter((n) => deferredStart.has(n));
          await settleAll(
            starting.map(async (n) => {
              const t = states.get(n)!;
              await record(t, () => applier(t).step(unitsStep('units', 'start keepalived on the new VRRP instance', [deferredStart.get(n)!], unitsTimeoutMs, `${co.holder} left the old instance`)));
              deferredStart.delete(n);
            }),
            (i, err) => toKhaError(starting[i]!, 'units', err),
            'keepalived did not start on the new VRRP instance everywhere',
          );
          changed = true;
        }
        stepDone = true;
      } finally {
        if (held) await releaseVip(s, held, !stepDone);
      }
      if (changed) {
        // A master whose keepalived waits for the instance move cannot take over yet: not checked for it.
        const ready = done.filter((n) => !deferredStart.has(n));
        if (co.mode === 'first-deploy') await gate(role, role === 'primary' ? 'vip-on-primary' : 'vip-still-on-primary-only', name, [name], ready);
        else {
          const g = stepGate(step, spec.primary);
          await gate(g.role, g.id, name, [name], ready, { holder: step.expectHolder, ...(step.gateVip ? { vip: step.gateVip } : {}) });
        }
      }
    }

    checkAbort();
    emit({ type: 'phase', phase: 'done', message: 'final check: VIP placement and kubectl through the VIP on every master' });
    await gate('final', 'final-check', states.has(spec.primary) ? spec.primary : order[0]!, order, order);
  } catch (err) {
    error = runError(err, opts.signal, interrupted);
  } finally {
    grace.dispose();
    await Promise.allSettled(all().map((s) => s.lock?.release()));
    await Promise.allSettled(remotes().map((r) => r.close()));
  }
  const recap = all().map<HostRecap>((s) => ({
    host: s.spec.name,
    ok: s.statuses.filter((x) => x === 'ok').length,
    changed: s.statuses.filter((x) => x === 'changed').length,
    unreachable: s.unreachable ? 1 : 0,
    failed: s.statuses.filter((x) => x === 'failed').length,
    commands: s.remote?.commandCount ?? 0,
  }));
  return {
    recap,
    ...(seen ? { vipHolders: seen.holders, vipSeenAt: seen.at } : {}),
    gates,
    ...(error === undefined ? {} : { error }),
  };

  /** Runs a preflight check; a refusal marks each host it names as failed in the recap, then ends the run. */
  function refuseAs(check: () => void): void {
    try {
      check();
    } catch (err) {
      if (err instanceof ManyErrors) for (const e of err.errors) if (e instanceof HostStepError) markFailure(states.get(e.host), e);
      throw err;
    }
  }

  /** Keeps the holder answering for the VIP through the reload that recreates its instance (src/vip-hold.ts); undefined: no hold. */
  async function holdVip(s: HostState): Promise<string | undefined> {
    const iface = vipInterface(s.spec, s.facts!);
    const r = await s.remote!.run(holdVipScript(spec.vip, iface, 3 * spec.advertInt + 30), { label: `hold ${spec.vip} through the instance move`, timeoutMs: 15_000, ...signalOpt }).catch((err: unknown) => ({ code: -1, stdout: '', stderr: String(err) }));
    if (r.code === 0) return iface;
    emit({ type: 'warning', host: s.spec.name, message: `could not keep ${spec.vip} answered during the instance move (${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.code}`}): the VIP is unreachable for about the master-down interval` });
    return undefined;
  }

  /** Waits until the new instance holds the VIP (not after a failure), then removes the holding copy. */
  async function releaseVip(s: HostState, iface: string, failed: boolean): Promise<void> {
    const waitSeconds = 3 * spec.advertInt + 3;
    const r = await s.remote!.run(releaseVipScript(spec.vip, iface, failed ? 0 : waitSeconds), { label: `release the hold of ${spec.vip}`, timeoutMs: 30_000 }).catch((err: unknown) => ({ code: -1, stdout: '', stderr: String(err) }));
    if (!r.stdout.includes('@@KHA-VIPHOLD back') && !failed) emit({ type: 'warning', host: s.spec.name, message: `the new VRRP instance did not take ${spec.vip} within ${waitSeconds} s; the holding copy is removed (${HOLD_UNIT}.timer would have removed it anyway)` });
  }

  function applier(s: HostState): HostApplier {
    return new HostApplier({ remote: s.remote!, emit, keepBackups: playbook.backups, signal: grace.signal });
  }

  async function lockAndReadFacts(s: HostState): Promise<void> {
    const locked = await lockAndPlan(s.remote!, s.spec, spec, playbook, {
      owner: owner(),
      breakLock: opts.breakLock === true,
      preflight: spec.haproxyHealthCheck === 'readyz',
      vipOwner: true,
      vridListen: spec.family === 4,
      authSalt,
      lockedHint: 'wait for the other run to finish: its lock goes away when it ends, dies or stops sending heartbeats (30 s). If you know it is gone, rerun with --break-lock',
      ...signalOpt,
    });
    s.lock = locked.held;
    s.facts = locked.facts;
    s.plan = locked.plan;
    if (locked.authHash !== undefined) s.authHash = locked.authHash;
    if (locked.brokenOwner) emit({ type: 'warning', host: s.spec.name, message: `--break-lock: ended the run lock held by ${locked.brokenOwner}` });
  }
}

/**
 * Take the run lock and read the facts in one held command (with the preflight's /readyz probe riding
 * along when asked), then plan. The lock stays held: the caller releases `held`. Deploy and check share it.
 */
export async function lockAndPlan(
  remote: Remote,
  host: HostSpec,
  spec: ClusterSpec,
  playbook: Playbook,
  o: {
    owner: string;
    breakLock?: boolean;
    preflight: boolean;
    lockedHint: string;
    signal?: AbortSignal;
    /** Also ask who answers for the VIP (the network preflight). */ vipOwner?: boolean;
    /** Also listen for VRRP adverts on our VRID where our keepalived does not run it yet (the network preflight). */ vridListen?: boolean;
    /** Also report the salted hash of keepalived.conf's auth_pass (an instance move when it differs). */ authSalt?: string;
  },
): Promise<{ held: HeldCommand; facts: HostFacts; plan: HostPlan; brokenOwner?: string; authHash?: string }> {
  const name = host.name;
  // The probe runs in the background while the facts are read (a TLS round trip costs as much as all the facts).
  const facts = factsScript(spec, playbook);
  const probes = [
    ...(o.preflight ? [readyzProbeScript(host.address, spec.apiserverPort)] : []),
    ...(o.vipOwner ? [vipOwnerProbeScript(spec.vip, spec.vipPort)] : []),
    ...(o.vridListen ? [vridListenScript({ vrid: spec.virtualRouterId, advertInt: spec.advertInt, keepalivedConf: playbook.files.keepalived.path })] : []),
    ...(o.authSalt ? [authProbeScript(playbook.files.keepalived.path, o.authSalt)] : []),
  ];
  const inner = probes.length > 0
    ? [
        'kha_pt=$(mktemp 2>/dev/null) || kha_pt=/tmp/kha-deploy-preflight.$$',
        `{\n${probes.join('\n')}\n} >"$kha_pt" 2>/dev/null </dev/null &`,
        'kha_pp=$!',
        facts,
        'wait "$kha_pp" || :',
        'cat "$kha_pt" 2>/dev/null; rm -f "$kha_pt"',
      ].join('\n')
    : facts;
  let held;
  try {
    held = await remote.hold(lockScript(inner, o.owner, { breakLock: o.breakLock === true }), READY_MARK, { timeoutMs: FACTS_TIMEOUT_MS, ...(o.signal ? { signal: o.signal } : {}) });
  } catch (err) {
    if (err instanceof DeadlineError) throw new DeadlineError(name, 'facts', err.timeoutMs, err.seen ?? '', { what: 'taking the run lock and reading facts' });
    throw err;
  }
  if (!('release' in held)) throw lockRefusal(host, held, o.lockedHint);
  try {
    const hostFacts = parseFacts(name, held.output, spec.vip);
    const brokenOwner = brokenLockOwner(held.output);
    const auth = new RegExp(`^${AUTH_MARK} ([0-9a-f]{64})\\s*$`, 'm').exec(held.output)?.[1];
    return { held, facts: hostFacts, plan: planHost(spec, host, hostFacts, playbook), ...(brokenOwner ? { brokenOwner } : {}), ...(auth ? { authHash: auth } : {}) };
  } catch (err) {
    await held.release();
    throw toKhaError(name, 'facts', err);
  }
}

let ownerText: string | undefined;
/** Who this run is, as the lock records it. */
export function owner(): string {
  ownerText ??= `kha-deploy pid ${process.pid} by ${userInfo().username}@${hostname()}`; // the host's record adds since= and from=
  return ownerText;
}

/** The gate after a step on a running cluster: its id and timing role. */
export function stepGate(step: OrderStep, primary: string): { id: string; role: 'primary' | 'backup' } {
  const h = step.expectHolder;
  if (step.moves) return { id: h === primary ? 'vip-on-primary' : 'vip-moved', role: 'primary' };
  if (h === undefined) return { id: 'vip-on-one-master', role: 'backup' };
  if (h === step.host) return { id: h === primary ? 'vip-on-primary' : 'vip-still-on-holder', role: 'primary' };
  return { id: h === primary ? 'vip-still-on-primary-only' : 'vip-still-on-holder', role: 'backup' };
}

const AUTH_MARK = '@@KHA-AUTH';

/** Prints `@@KHA-AUTH <sha256 of "SALT PASS">` for the first auth_pass in keepalived.conf ('' when none). */
export function authProbeScript(path: string, salt: string): string {
  return [
    scriptTag('preflight', 'vrrp-auth', salt),
    `kha_a=$(sed -n 's/^[[:space:]]*auth_pass[[:space:]][[:space:]]*\\([^[:space:]]*\\).*/\\1/p' ${shellQuote(path)} 2>/dev/null | head -n 1)`,
    `printf '%s %s' ${shellQuote(salt)} "$kha_a" | sha256sum 2>/dev/null | sed -n 's/^\\([0-9a-f]\\{64\\}\\).*/${AUTH_MARK} \\1/p'`,
  ].join('\n');
}

/** The hash authProbeScript prints for `pass` (none: ''). */
export function authHash(salt: string, pass: string | undefined): string {
  return createHash('sha256').update(`${salt} ${pass ?? ''}`, 'utf8').digest('hex');
}

/** A salt for one run: the auth_pass is compared through it, so neither the pass nor a reusable hash leaves a host. */
export function newAuthSalt(): string {
  return randomBytes(12).toString('hex');
}

/**
 * Whether a host's keepalived.conf has another auth_pass than `expected` (authHash(salt, the inventory's
 * pass)), from the salted hash the host printed. No hash, or no keepalived.conf in the facts: not a difference.
 */
export function authDiffers(hostHash: string | undefined, facts: HostFacts | undefined, expected: string): boolean {
  return hostHash !== undefined && facts?.keepalivedConf !== undefined && hostHash !== expected;
}

/** Stops keepalived (a managed instance move); the config keepalived last loaded stays recorded, the unit enabled. */
function stopKeepalivedScript(): string {
  return [scriptTag('service', 'keepalived', 'stop'), 'set -eu', `systemctl stop ${shellQuote('keepalived.service')}`].join('\n');
}

function unitsStep(id: string, title: string, ops: Operation[], timeoutMs: number, reason: string): PlannedStep {
  return { id, title, ops, timeoutMs, reason };
}

/**
 * The plan of a master whose keepalived waits for the instance move: everything but starting keepalived
 * (kept in `deferred`, run after the holder's change); enabling it at boot still happens now.
 */
function deferKeepalivedStart(plan: HostPlan, host: string, deferred: Map<string, Operation>): HostPlan {
  return {
    ...plan,
    steps: plan.steps.map((st) => {
      if (st.id !== 'units') return st;
      const ops: Operation[] = [];
      for (const op of st.ops) {
        if (op.op === 'service' && op.unit === 'keepalived' && (op.action === 'enable-start' || op.action === 'reload' || op.action === 'restart')) {
          deferred.set(host, { op: 'service', unit: 'keepalived', action: 'enable-start', ...(op.recordApplied ? { recordApplied: op.recordApplied } : {}) });
        } else ops.push(op);
      }
      return { ...st, ops, reason: ops.length === st.ops.length ? st.reason : `${st.reason} (keepalived starts after the holder's change)` };
    }),
  };
}

/** A lost connection makes a host unreachable (as Ansible counts it); anything else is a failure. */
function markFailure(s: HostState | undefined, err: unknown): void {
  if (!s) return;
  if (err instanceof ConnectError || err instanceof HostKeyError) s.unreachable = true;
  else if (!(err instanceof InterruptedError)) s.statuses.push('failed');
}

/** Record the status a step ends with on its host; a failure is recorded by markFailure. */
async function record(s: HostState, work: () => Promise<StepStatus>, count = true): Promise<StepStatus> {
  try {
    const status = await work();
    if (count) s.statuses.push(status);
    return status;
  } catch (err) {
    markFailure(s, err);
    throw err;
  }
}

/** Run all in parallel; when any fails, throw one error naming every failed host. */
async function settleAll(
  tasks: Promise<void>[],
  wrap: (index: number, err: unknown) => KhaError,
  summary: string,
): Promise<void> {
  const results = await Promise.allSettled(tasks);
  const errors = results.flatMap((r, i) => (r.status === 'rejected' ? [wrap(i, r.reason)] : []));
  if (errors.length > 0) throw new ManyErrors(errors, `${errors.length} master${errors.length === 1 ? '' : 's'} failed; ${summary}`);
}
