// The pipeline: connect → lock + facts → plan → packages (parallel) → per host in order: re-read
// facts, apply, gate → final check. Emits RunEvents; never prints.
import { hostname, userInfo } from 'node:os';
import { HostStepError, InterruptedError, KhaError, LockedError, ManyErrors } from '../errors.js';
import { HostApplier } from '../apply.js';
import { factsScript, parseFacts } from '../facts.js';
import { waitForGate } from '../gates/wait.js';
import { planHost, vipInterface } from '../plan.js';
import type { Playbook } from '../playbook.js';
import type { ClusterSpec, HeldCommand, HostFacts, HostPlan, HostRecap, HostSpec, Remote, RunEvent, StepStatus } from '../types.js';
import { isSudoPasswordRequired, isSudoPasswordWrong } from '../ssh/command.js';
import { LOCKED_EXIT, READY_MARK, lockScript } from './lock.js';
import { gateTiming } from './timing.js';

export interface RolloutOptions {
  spec: ClusterSpec;
  playbook: Playbook;
  /** Hosts to act on (after --limit), in any order; the rollout order comes from spec.order. */
  hosts: HostSpec[];
  connect: (host: HostSpec) => Promise<Remote>;
  emit: (e: RunEvent) => void;
  signal?: AbortSignal;
  secrets: readonly string[];
}

export interface RolloutResult {
  recap: HostRecap[];
  /** Host holding the VIP at the end ('' when none was seen). */
  vipHolder: string;
  error?: unknown;
}

interface HostState {
  spec: HostSpec;
  remote?: Remote;
  lock?: HeldCommand;
  facts?: HostFacts;
  plan?: HostPlan;
  statuses: StepStatus[];
}

function toKhaError(host: string, step: string, err: unknown): KhaError {
  if (err instanceof KhaError) return err;
  return new HostStepError(host, step, err instanceof Error ? err.message : String(err), { cause: err });
}

export async function runRollout(opts: RolloutOptions): Promise<RolloutResult> {
  const { spec, playbook, emit } = opts;
  const order = spec.order.filter((n) => opts.hosts.some((h) => h.name === n));
  const states = new Map<string, HostState>(order.map((n) => [n, { spec: opts.hosts.find((h) => h.name === n)!, statuses: [] }]));
  const all = () => [...states.values()];
  const remotes = () => all().flatMap((s) => (s.remote ? [s.remote] : []));
  const interrupted = () => new InterruptedError('interrupted: stopped before the next step; no file is half-written, rerun to converge');
  const checkAbort = () => {
    if (opts.signal?.aborted) throw interrupted();
  };
  let vipHolder = '';
  let error: unknown;
  /** The VIP must be on the primary (when it is in this run) and kubectl must answer through it on `kubectlOn`. */
  const gate = (role: 'primary' | 'backup' | 'final', id: string, host: string, kubectlOn: string[]) => {
    const primary = states.get(spec.primary);
    const t = gateTiming(playbook, role);
    return waitForGate({
      spec,
      gate: id,
      host,
      remotes: remotes(),
      expectedHolder: primary ? spec.primary : undefined,
      expectedInterface: role !== 'backup' && primary?.facts ? vipInterface(primary.spec, primary.facts) : undefined,
      kubectlOn,
      vipFirst: role === 'primary',
      timeoutMs: t.timeoutMs,
      intervalMs: t.intervalMs,
      emit,
      interfaces: primary?.facts?.interfaces,
      signal: opts.signal,
    });
  };

  try {
    emit({ type: 'phase', phase: 'connect', message: `connecting to ${order.join(', ')}` });
    await settleAll(
      all().map(async (s) => {
        s.remote = await opts.connect(s.spec);
      }),
      (i, err) => toKhaError(all()[i]!.spec.name, 'connect', err),
      'cannot reach every master: no host was changed',
    );
    checkAbort();

    emit({ type: 'phase', phase: 'facts', message: 'locking and reading facts' });
    const owner = `kha-deploy pid ${process.pid} by ${userInfo().username}@${hostname()} since ${new Date().toISOString()}`;
    await settleAll(
      all().map(async (s) => {
        const held = await s.remote!.hold(lockScript(factsScript(spec, s.spec, playbook), owner), READY_MARK);
        if (!('release' in held)) {
          if (held.code === LOCKED_EXIT) {
            throw new LockedError(s.spec.name, 'lock', 'another kha-deploy run is working on this master', {
              seen: held.stderr.trim(),
              hint: 'wait for the other run to finish (its lock goes away when it ends or dies), then rerun',
            });
          }
          const sudo = isSudoPasswordRequired(held.stderr) || isSudoPasswordWrong(held.stderr);
          throw new HostStepError(s.spec.name, 'facts', sudo ? `sudo on the host did not accept the become credentials` : `reading the host's facts failed (exit ${held.code})`, {
            seen: (held.stderr || held.stdout).trim(),
            hint: sudo
              ? `sudo requires a password for ${s.spec.user}: pass it with --ask-become-pass or KHA_BECOME_PASS, or give the user NOPASSWD sudo`
              : 'the facts command needs a POSIX sh, flock, ip and systemctl on the host',
          });
        }
        s.lock = held;
        s.facts = parseFacts(s.spec.name, held.output, spec.vip);
        s.plan = planHost(spec, s.spec, s.facts, playbook);
      }),
      (i, err) => toKhaError(all()[i]!.spec.name, 'facts', err),
      'cannot start the rollout: no host was changed',
    );
    checkAbort();

    // Package installation dominates a first rollout and starts no service (policy-rc.d), so it runs in parallel.
    const needPkgs = all().filter((s) => s.plan!.steps.some((st) => st.id === 'packages' && st.ops.length > 0));
    if (needPkgs.length > 0) {
      emit({ type: 'phase', phase: 'packages', message: `installing packages on ${needPkgs.map((s) => s.spec.name).join(', ')}` });
      await settleAll(
        needPkgs.map(async (s) => {
          const st = s.plan!.steps.find((x) => x.id === 'packages')!;
          await record(s, () => new HostApplier({ remote: s.remote!, emit, keepBackups: playbook.backups, secrets: opts.secrets }).step(st));
        }),
        (i, err) => toKhaError(needPkgs[i]!.spec.name, 'packages', err),
        'package installation failed: no configuration was changed',
      );
    }

    emit({ type: 'phase', phase: 'rollout', message: `rolling out in order ${order.join(' → ')}` });
    for (const name of order) {
      checkAbort();
      const s = states.get(name)!;
      const role = name === spec.primary ? 'primary' : 'backup';
      emit({ type: 'host-start', host: name, role });
      const pkgsDone = needPkgs.includes(s);
      let plan = s.plan!;
      if (pkgsDone || plan.steps.some((st) => st.ops.length > 0)) {
        // Re-read right before changing: packages just changed the host, or another actor may have.
        const res = await s.remote!.run(factsScript(spec, s.spec, playbook), { label: 'read facts again' });
        if (res.code !== 0) throw new HostStepError(name, 'facts', `reading facts failed (exit ${res.code})`, { seen: res.stderr });
        s.facts = parseFacts(name, res.stdout, spec.vip);
        plan = planHost(spec, s.spec, s.facts, playbook);
      }
      const applier = new HostApplier({ remote: s.remote!, emit, keepBackups: playbook.backups, secrets: opts.secrets });
      let changed = false;
      for (const st of plan.steps) {
        if (st.id === 'packages' && pkgsDone) continue;
        checkAbort();
        changed = (await record(s, () => applier.step(st))) === 'changed' || changed;
      }
      if (changed) {
        await record(s, async () => {
          vipHolder = await gate(role, role === 'primary' ? 'vip-on-primary' : 'vip-still-on-primary-only', name, [name]);
          return 'ok';
        });
      }
    }

    checkAbort();
    emit({ type: 'phase', phase: 'done', message: 'final check: VIP placement and kubectl through the VIP on every master' });
    vipHolder = await gate('final', 'final-check', states.has(spec.primary) ? spec.primary : order[0]!, order);
  } catch (err) {
    // After Ctrl-C a host failure is still reported as such; anything else (an aborted wait) is the interrupt.
    error = opts.signal?.aborted && !(err instanceof KhaError) ? interrupted() : err;
  } finally {
    await Promise.allSettled(all().map((s) => s.lock?.release()));
    await Promise.allSettled(remotes().map((r) => r.close()));
  }
  const recap = all().map<HostRecap>((s) => ({
    host: s.spec.name,
    ok: s.statuses.filter((x) => x === 'ok').length,
    changed: s.statuses.filter((x) => x === 'changed').length,
    unreachable: 0,
    failed: s.statuses.filter((x) => x === 'failed').length,
    commands: s.remote?.commandCount ?? 0,
  }));
  return error === undefined ? { recap, vipHolder } : { recap, vipHolder, error };
}

/** Record the status a step or gate ends with on its host, 'failed' when it throws. */
async function record(s: HostState, work: () => Promise<StepStatus>): Promise<StepStatus> {
  try {
    const status = await work();
    s.statuses.push(status);
    return status;
  } catch (err) {
    s.statuses.push('failed');
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

