// runRollout against the in-memory host model (test/helpers/fake-host.ts): ordering, gates,
// stop-on-failure, rollback, interrupts and the recap, in milliseconds and without Docker.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectError, GateError, HostStepError, InterruptedError, LockedError, ManyErrors } from '../../src/errors.js';
import { renderHaproxy } from '../../src/render.js';
import { runRollout, type RolloutOptions, type RolloutResult } from '../../src/runner/rollout.js';
import type { ClusterSpec, HostRecap, RunEvent } from '../../src/types.js';
import { cluster } from '../fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook, type FakeCommand, type FakeHost } from '../helpers/fake-host.js';

const ALL = ['master1', 'master2', 'master3'];
const CONFIG_KINDS = ['rundir', 'write', 'service', 'rollback'];

interface Run {
  result: RolloutResult;
  events: RunEvent[];
}

/** Run the rollout on the fake cluster (spec defaults to the cluster's), and check the model met no surprise. */
async function rollout(fc: FakeCluster, o: { spec?: ClusterSpec; signal?: AbortSignal; onEvent?: (e: RunEvent, fc: FakeCluster) => void } = {}): Promise<Run> {
  const spec = o.spec ?? fc.spec;
  const events: RunEvent[] = [];
  const options: RolloutOptions = {
    spec,
    playbook: fc.playbook,
    hosts: spec.hosts,
    connect: fc.connect,
    emit: (e: RunEvent) => {
      events.push(e);
      o.onEvent?.(e, fc);
    },
    ...(o.signal ? { signal: o.signal } : {}),
  };
  const result = await runRollout(options);
  fc.assertNoSurprises();
  return { result, events };
}

/** Same cluster, another haproxy balance: haproxy.cfg changes on every master (write + reload). */
function changed(spec: ClusterSpec): ClusterSpec {
  return { ...spec, haproxyBalance: 'leastconn' };
}

/** Priorities that make the inventory order differ from the rollout order: master2 (150) → master3 (140) → master1 (130). */
function reordered(): ClusterSpec {
  const base = cluster();
  const prio: Record<string, number> = { master1: 130, master2: 150, master3: 140 };
  return {
    ...base,
    hosts: base.hosts.map((h) => ({ ...h, priority: prio[h.name]! })),
    order: ['master2', 'master3', 'master1'],
    primary: 'master2',
    primaryReason: 'master2 has the highest priority (150)',
  };
}

function recapOf(result: RolloutResult, host: string): HostRecap {
  const r = result.recap.find((x) => x.host === host);
  assert.ok(r, `no recap for ${host}`);
  return r;
}

/** ok/changed/failed/commands of a recap line. */
function counts(r: HostRecap): { ok: number; changed: number; failed: number; commands: number } {
  return { ok: r.ok, changed: r.changed, failed: r.failed, commands: r.commands };
}

const configCommands = (h: FakeHost): FakeCommand[] => h.commands.filter((c) => CONFIG_KINDS.includes(c.kind));
const tagOf = (c: FakeCommand) => [c.kind, ...c.args].join(' ');

/** The host looks as it did (files, packages, units) and received nothing but the lock and observations. */
function untouched(h: FakeHost, before: ReturnType<FakeHost['snapshot']>): void {
  assert.deepEqual(h.snapshot(), before, `${h.name} changed`);
  const kinds = new Set(h.kinds());
  for (const k of kinds) assert.ok(['lock', 'observe', 'journal', 'neighbour'].includes(k), `${h.name} received a '${k}' command: ${h.tags().join(', ')}`);
}

function assertAllReleasedAndClosed(fc: FakeCluster): void {
  for (const h of fc.all()) assert.equal(h.lockHolder, null, `${h.name} still locked`);
  for (const r of fc.remotes) assert.ok(r.closed || r.lost, `connection #${r.id} to ${r.host} left open`);
}

describe('runRollout: fresh masters', () => {
  it('packages on every master first, then primary → backups by priority, a gate after each master, then the final check', async () => {
    const fc = new FakeCluster(reordered(), fastPlaybook());
    const { result, events } = await rollout(fc);
    assert.equal(result.error, undefined, String(result.error));

    // Packages: every master, before any configuration is touched anywhere.
    const firstConfig = fc.log.find((c) => CONFIG_KINDS.includes(c.kind))!.seq;
    assert.deepEqual(fc.logOf('packages').map((c) => c.host).sort(), ALL);
    assert.ok(fc.logOf('packages').every((c) => c.seq < firstConfig));

    // One master at a time, in priority order (not inventory order).
    const configOrder = [...new Set(fc.log.filter((c) => CONFIG_KINDS.includes(c.kind)).map((c) => c.host))];
    assert.deepEqual(configOrder, ['master2', 'master3', 'master1']);
    assert.deepEqual(events.flatMap((e) => (e.type === 'host-start' ? [`${e.host}:${e.role}`] : [])), ['master2:primary', 'master3:backup', 'master1:backup']);
    for (const [a, b] of [['master2', 'master3'], ['master3', 'master1']] as const) {
      const lastA = configCommands(fc.host(a)).at(-1)!.seq;
      const firstB = configCommands(fc.host(b))[0]!.seq;
      assert.ok(lastA < firstB, `${a} finished before ${b} started`);
      const gate = fc.log.filter((c) => c.seq > lastA && c.seq < firstB && c.kind === 'observe' && c.host === a && c.args[0] === 'kubectl');
      assert.ok(gate.length > 0, `a gate (kubectl through the VIP on ${a}) ran between ${a} and ${b}`);
    }

    // What each master received, configuration-wise (Debian: the haproxy package made /run/haproxy and its tmpfiles entry).
    for (const n of ALL) {
      assert.deepEqual(configCommands(fc.host(n)).map(tagOf), [
        'write /etc/haproxy/haproxy.cfg',
        'write /etc/keepalived/keepalived.conf',
        'service haproxy enable-start',
        'service keepalived enable-start',
      ]);
    }

    // The final check: kubectl through the VIP on every master after the last change.
    const lastChange = fc.log.filter((c) => CONFIG_KINDS.includes(c.kind)).at(-1)!.seq;
    for (const n of ALL) assert.ok(fc.host(n).commands.some((c) => c.seq > lastChange && c.kind === 'observe' && c.args[0] === 'kubectl'), `final check on ${n}`);
    assert.ok(events.some((e) => e.type === 'phase' && e.phase === 'done'));
    assertAllReleasedAndClosed(fc);
  });

  it('leaves the VIP on the primary and every master running the config it was given', async () => {
    const fc = new FakeCluster(reordered(), fastPlaybook());
    const { result } = await rollout(fc);
    assert.equal(result.error, undefined);
    assert.deepEqual(fc.vipHolders(), ['master2']);
    const haproxy = renderHaproxy(fc.spec, fc.playbook);
    for (const h of fc.all()) {
      assert.equal(h.units.haproxy.active, 'active');
      assert.equal(h.units.keepalived.active, 'active');
      assert.equal(h.units.haproxy.loaded, haproxy);
      assert.match(h.units.keepalived.loaded ?? '', new RegExp(`priority ${h.spec.priority}\\n`));
      assert.equal(h.lockReleases, 1);
    }
  });

  it('recap after a fresh rollout: per-master changed/failed, and the commands each master received', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const { result } = await rollout(fc);
    assert.equal(result.error, undefined);
    for (const n of ALL) {
      // packages, haproxy-config, keepalived-config, units changed (the ok count is in a 'changing' test below).
      const r = recapOf(result, n);
      assert.deepEqual({ changed: r.changed, failed: r.failed, commands: r.commands }, { changed: 4, failed: 0, commands: fc.host(n).commands.length }, n);
    }
  });

  it('a rerun on the converged cluster sends exactly 2 commands per master and changes nothing', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    assert.equal((await rollout(fc)).result.error, undefined);
    const before = fc.all().map((h) => h.snapshot());
    const mark = fc.log.length;

    const { result } = await rollout(fc);
    assert.equal(result.error, undefined);
    for (const n of ALL) {
      assert.deepEqual(fc.log.slice(mark).filter((c) => c.host === n).map(tagOf), ['lock /run/lock', 'observe kubectl health'], n);
      const r = recapOf(result, n);
      assert.equal(r.commands, 2);
      assert.equal(r.changed, 0);
      assert.equal(r.failed, 0);
    }
    assert.deepEqual(fc.all().map((h) => h.snapshot()), before, 'no file, package or unit changed (no restart either)');
    assert.deepEqual(fc.vipHolders(), ['master1']);
  });

  it('rocky masters: dnf, then /run/haproxy and its tmpfiles entry, then the units (enabled by enable-start)', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook(), { hosts: Object.fromEntries(ALL.map((n) => [n, { os: 'rocky' as const }])) });
    const { result } = await rollout(fc);
    assert.equal(result.error, undefined, String(result.error));
    const h = fc.host('master1');
    assert.deepEqual(h.commandsOf('packages').map(tagOf), ['packages dnf keepalived haproxy']);
    assert.deepEqual(configCommands(h).map(tagOf), [
      'write /etc/tmpfiles.d/kha-deploy-haproxy.conf',
      'rundir /run/haproxy',
      'write /etc/haproxy/haproxy.cfg',
      'write /etc/keepalived/keepalived.conf',
      'service haproxy enable-start',
      'service keepalived enable-start',
    ]);
    assert.equal(h.units.haproxy.enabled, 'enabled');
    assert.deepEqual(h.backups('/etc/keepalived/keepalived.conf').length, 1, 'the packaged sample was kept as a backup');
    assert.deepEqual(fc.vipHolders(), ['master1']);
  });
});

describe('runRollout: stop on failure', () => {
  it('a failed gate on the first master changed stops before the next master: the others get nothing beyond the lock and observations', async () => {
    // A running cluster: master1 holds the VIP, so master2 is changed first (the holder last).
    const fc = new FakeCluster(cluster(), fastPlaybook({ timeoutSeconds: 0.1 })).converge();
    fc.host('master2').kubectl = 'refused';
    const before = { master1: fc.host('master1').snapshot(), master3: fc.host('master3').snapshot() };
    const { result, events } = await rollout(fc, { spec: changed(fc.spec) });

    assert.ok(result.error instanceof GateError, String(result.error));
    assert.equal(result.error.step, 'vip-still-on-primary-only');
    assert.match(result.error.message, /did not print a Server Version/);
    assert.deepEqual(configCommands(fc.host('master2')).map(tagOf), ['write /etc/haproxy/haproxy.cfg', 'service haproxy reload']);
    untouched(fc.host('master1'), before.master1);
    untouched(fc.host('master3'), before.master3);
    assert.ok(!events.some((e) => e.type === 'host-start' && e.host !== 'master2'));
    assert.ok(!events.some((e) => e.type === 'phase' && e.phase === 'done'), 'no final check');
    assertAllReleasedAndClosed(fc);
  });

  it('a validator failure on master3 stops there: its old file stays, the holder master1 is untouched', async () => {
    // A running cluster: master2, then master3, then the VIP holder master1.
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const path = fc.playbook.files.haproxy.path;
    fc.host('master3').rejectWrite(path, "[ALERT] (4242) : config : parsing [/etc/haproxy/.haproxy.cfg.kha-tmp.Ab12Cd:18] : unknown keyword 'balanse' in 'backend' section");
    const before = { master1: fc.host('master1').snapshot(), master3: fc.host('master3').snapshot() };
    const { result } = await rollout(fc, { spec: changed(fc.spec) });

    assert.ok(result.error instanceof HostStepError, String(result.error));
    assert.equal(result.error.host, 'master3');
    assert.equal(result.error.step, 'haproxy-config');
    assert.match(result.error.message, /failed validation on the host; the old file stays in place and the service was not touched/);
    assert.match(result.error.seen ?? '', /unknown keyword 'balanse'/);
    assert.deepEqual(fc.host('master3').snapshot(), before.master3);
    assert.deepEqual(configCommands(fc.host('master3')).map(tagOf), ['write /etc/haproxy/haproxy.cfg']);
    untouched(fc.host('master1'), before.master1);
    assert.equal(fc.host('master2').units.haproxy.loaded, renderHaproxy(changed(fc.spec), fc.playbook), 'master2 went through');
    assert.deepEqual(fc.vipHolders(), ['master1']);
  });

  it('a unit that does not come up after reload: the applier restores the previous config and restarts it, the error says so, the run stops', async () => {
    // master2 is changed first (master1 holds the VIP and goes last).
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const h = fc.host('master2');
    const path = fc.playbook.files.haproxy.path;
    const old = h.files.get(path)!;
    const pid = h.units.haproxy.mainPid;
    h.failService('haproxy', 'reload');
    const before = { master1: fc.host('master1').snapshot(), master3: fc.host('master3').snapshot() };
    const { result } = await rollout(fc, { spec: changed(fc.spec) });

    assert.ok(result.error instanceof HostStepError, String(result.error));
    assert.equal(result.error.host, 'master2');
    assert.equal(result.error.step, 'units');
    assert.match(result.error.message, /haproxy did not come up after reload; the previous config was restored and haproxy restarted with it/);
    assert.deepEqual(configCommands(h).map(tagOf), ['write /etc/haproxy/haproxy.cfg', 'service haproxy reload', 'rollback haproxy /etc/haproxy/haproxy.cfg']);
    assert.equal(h.files.get(path), old);
    assert.equal(h.units.haproxy.active, 'active');
    assert.equal(h.units.haproxy.loaded, old);
    assert.notEqual(h.units.haproxy.mainPid, pid);
    assert.deepEqual(fc.vipHolders(), ['master1'], 'the VIP stayed on the primary');
    untouched(fc.host('master1'), before.master1);
    untouched(fc.host('master3'), before.master3);

    // The rollback forgot the applied hash: a rerun writes and reloads again, and converges.
    const mark = fc.log.length;
    const rerun = await rollout(fc, { spec: changed(fc.spec) });
    assert.equal(rerun.result.error, undefined, String(rerun.result.error));
    assert.deepEqual(fc.log.slice(mark).filter((c) => c.host === 'master2' && CONFIG_KINDS.includes(c.kind)).map(tagOf), ['write /etc/haproxy/haproxy.cfg', 'service haproxy reload']);
    for (const x of fc.all()) assert.equal(x.units.haproxy.loaded, renderHaproxy(changed(fc.spec), fc.playbook));
  });

  it('a connection lost on master2 stops the run; the write never happened, master3 is untouched', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    fc.host('master2').loseConnectionOn('write');
    const before = { master2: fc.host('master2').snapshot(), master3: fc.host('master3').snapshot() };
    const { result } = await rollout(fc, { spec: changed(fc.spec) });

    assert.ok(result.error instanceof ConnectError, String(result.error));
    assert.equal(result.error.host, 'master2');
    assert.match(result.error.message, /was lost/);
    assert.deepEqual(fc.host('master2').snapshot(), before.master2);
    untouched(fc.host('master3'), before.master3);
    assertAllReleasedAndClosed(fc);
  });
});

describe('runRollout: interrupts', () => {
  it('Ctrl-C between steps: InterruptedError (exit 130), no later step runs, every lock released, every connection closed', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const ac = new AbortController();
    let sentAtAbort = -1;
    const { result, events } = await rollout(fc, {
      signal: ac.signal,
      onEvent: (e) => {
        // The first configuration step that changed something: master1's haproxy.cfg.
        if (!ac.signal.aborted && e.type === 'step-end' && e.step !== 'packages' && e.status === 'changed') {
          ac.abort();
          sentAtAbort = fc.log.length;
        }
      },
    });

    assert.ok(result.error instanceof InterruptedError, String(result.error));
    assert.equal(result.error.exitCode, 130);
    assert.ok(sentAtAbort > 0);
    assert.equal(fc.log.length, sentAtAbort, `commands after Ctrl-C: ${fc.log.slice(sentAtAbort).map((c) => `${c.host}: ${tagOf(c)}`).join(', ')}`);
    const abortedAt = events.findIndex((e) => e.type === 'step-end' && e.step === 'haproxy-config');
    assert.ok(!events.slice(abortedAt + 1).some((e) => e.type === 'step-start'), 'no step started after Ctrl-C');
    assert.deepEqual(configCommands(fc.host('master1')).map(tagOf), ['write /etc/haproxy/haproxy.cfg']);
    assert.deepEqual(configCommands(fc.host('master2')), []);
    for (const h of fc.all()) assert.equal(h.lockReleases, 1, `${h.name}: lock released`);
    assertAllReleasedAndClosed(fc);
    assert.ok(fc.remotes.every((r) => r.closed));
  });

  it('Ctrl-C while a gate waits: InterruptedError at once, nothing reaches the backups, locks released', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook({ timeoutSeconds: 30 })).converge();
    fc.host('master2').kubectl = 'refused';
    const ac = new AbortController();
    const before = { master1: fc.host('master1').snapshot(), master3: fc.host('master3').snapshot() };
    const t0 = Date.now();
    const { result } = await rollout(fc, { spec: changed(fc.spec), signal: ac.signal, onEvent: (e) => e.type === 'gate-wait' && ac.abort() });

    assert.ok(result.error instanceof InterruptedError, String(result.error));
    assert.ok(Date.now() - t0 < 2000, 'did not wait out the 30 s gate');
    untouched(fc.host('master1'), before.master1);
    untouched(fc.host('master3'), before.master3);
    for (const h of fc.all()) assert.equal(h.lockReleases, 1);
    assertAllReleasedAndClosed(fc);
  });

  // HEAD's applier passes no RunOptions.signal: a command in flight is not ended by Ctrl-C.
  it('Ctrl-C during a hung package install ends it on the host and reports the interrupt', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.hangSafetyMs = 1500; // past the runner's grace for a change in flight (COMMAND_GRACE_MS, 1 s)
    fc.host('master2').hang('packages');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const { result } = await rollout(fc, { signal: ac.signal });
    assert.ok(result.error instanceof InterruptedError, String(result.error));
    for (const h of fc.all()) assert.deepEqual(configCommands(h), []);
    assertAllReleasedAndClosed(fc);
  });
});

describe('runRollout: the recap for each failure', () => {
  it('connect failure on one master: nothing is sent to any master, the other connections are closed', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master2').failConnect();
    const { result } = await rollout(fc);

    assert.ok(result.error instanceof ManyErrors, String(result.error));
    assert.match(result.error.message, /no host was changed/);
    assert.equal(result.error.errors.length, 1);
    assert.ok(result.error.errors[0] instanceof ConnectError);
    assert.equal((result.error.errors[0] as ConnectError).host, 'master2');
    assert.deepEqual(fc.log, [], 'no command reached any master');
    assert.equal(fc.remotes.length, 2);
    assertAllReleasedAndClosed(fc);
    for (const n of ALL) assert.deepEqual(counts(recapOf(result, n)), { ok: 0, changed: 0, failed: 0, commands: 0 });
  });

  it('a lock held by another run on one master: LockedError naming the holder, nothing changed, the other locks released', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master3').lockedBy = 'kha-deploy pid 4242 by ops@bastion since 2026-01-01T00:00:00.000Z';
    const { result } = await rollout(fc);

    assert.ok(result.error instanceof ManyErrors, String(result.error));
    assert.match(result.error.message, /no host was changed/);
    const locked = result.error.errors[0];
    assert.ok(locked instanceof LockedError, String(locked));
    assert.equal(locked.host, 'master3');
    assert.match(locked.seen ?? '', /kha-deploy pid 4242 by ops@bastion/);
    for (const n of ALL) assert.deepEqual(fc.host(n).tags(), ['lock /run/lock'], n);
    for (const n of ['master1', 'master2']) {
      assert.equal(fc.host(n).lockReleases, 1);
      assert.deepEqual(counts(recapOf(result, n)), { ok: 0, changed: 0, failed: 0, commands: 1 });
    }
    assert.equal(fc.host('master3').lockReleases, 0);
    assertAllReleasedAndClosed(fc);
  });

  it('a connection lost at the lock: the run does not start, nothing changed anywhere', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master3').loseConnectionAt(1);
    const { result } = await rollout(fc);
    assert.ok(result.error instanceof ManyErrors, String(result.error));
    assert.match(result.error.message, /cannot start the rollout: no host was changed/);
    assert.ok(result.error.errors[0] instanceof ConnectError);
    for (const h of fc.all()) assert.deepEqual(h.changes(), []);
    assertAllReleasedAndClosed(fc);
  });

  it('a failed step: the failed master counts one failure, masters after it only their packages (a passed gate counts one ok)', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master2').rejectWrite(fc.playbook.files.keepalived.path, 'Keepalived_vrrp: (Line 22) Unknown keyword prioriti');
    const { result } = await rollout(fc);
    assert.ok(result.error instanceof HostStepError);
    assert.equal(result.error.step, 'keepalived-config');
    const cmds = (n: string) => fc.host(n).commands.length;
    assert.deepEqual(counts(recapOf(result, 'master1')), { ok: 2, changed: 4, failed: 0, commands: cmds('master1') });
    assert.deepEqual(counts(recapOf(result, 'master2')), { ok: 1, changed: 2, failed: 1, commands: cmds('master2') });
    assert.deepEqual(counts(recapOf(result, 'master3')), { ok: 0, changed: 1, failed: 0, commands: cmds('master3') });
  });

  // ---- details the lead is changing: adjust these when the recap changes -------------------

  it('recap: a master that could not be connected to counts unreachable=1, not failed; the VIP was never observed', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master2').failConnect();
    const { result } = await rollout(fc);
    assert.deepEqual([recapOf(result, 'master2').unreachable, recapOf(result, 'master2').failed], [1, 0]);
    assert.deepEqual([recapOf(result, 'master1').unreachable, recapOf(result, 'master1').failed], [0, 0]);
    assert.equal(result.vipHolders, undefined);
  });

  it('recap: a connection lost during a step makes that master unreachable=1 (as Ansible counts it), not failed', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    fc.host('master2').loseConnectionOn('write');
    const { result } = await rollout(fc, { spec: changed(fc.spec) });
    const r = recapOf(result, 'master2');
    assert.deepEqual([r.failed, r.unreachable], [0, 1]);
  });

  it('recap: a master refused by another run’s lock counts one failure', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master3').lockedBy = 'kha-deploy pid 4242 by ops@bastion';
    const { result } = await rollout(fc);
    assert.deepEqual(counts(recapOf(result, 'master3')), { ok: 0, changed: 0, failed: 1, commands: 1 });
  });

  it('recap: after a fresh rollout each master counts rundir ok + its passed gate + the passed final check = 3', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const { result, events } = await rollout(fc);
    assert.equal(result.error, undefined);
    for (const n of ALL) assert.equal(recapOf(result, n).ok, 3, n);
    assert.deepEqual(result.vipHolders, ['master1']);
    assert.match(result.vipSeenAt ?? '', /^final-check/);
    // Each gate that passed says so once, with what it saw.
    const passes = events.filter((e): e is Extract<RunEvent, { type: 'gate-pass' }> => e.type === 'gate-pass');
    assert.deepEqual(passes.map((e) => `${e.host} ${e.gate}`), ['master1 vip-on-primary', 'master2 vip-still-on-primary-only', 'master3 vip-still-on-primary-only', 'master1 final-check']);
    for (const e of passes) assert.match(e.message, /^VIP on master1 after \d+\.\d s; kubectl through the VIP: v\d+\.\d+\.\d+$/);
    assert.deepEqual(result.gates.map((g) => [g.gate, g.ok, g.holder]), passes.map((e) => [e.gate, true, 'master1']));
  });

  it('recap: a failed gate counts one failure on the master it gated, none on the others', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook({ timeoutSeconds: 0.1 })).converge();
    fc.host('master1').kubectl = 'refused';
    const { result } = await rollout(fc, { spec: changed(fc.spec) });
    assert.ok(result.error instanceof GateError);
    // master1: packages, rundir, keepalived-config ok; haproxy-config and units changed; the gate failed.
    assert.deepEqual(counts(recapOf(result, 'master1')), { ok: 3, changed: 2, failed: 1, commands: fc.host('master1').commands.length });
    for (const n of ['master2', 'master3']) assert.equal(recapOf(result, n).failed, 0);
  });

  it('recap: a split brain at the final check marks every holder failed, and the VIP line shows every holder (not an earlier gate’s)', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook({ timeoutSeconds: 0.1 })).converge();
    fc.forceVip(['master1', 'master3']);
    const { result } = await rollout(fc);
    assert.ok(result.error instanceof GateError);
    assert.deepEqual(result.recap.map((r) => [r.host, r.failed]), [['master1', 1], ['master2', 0], ['master3', 1]]);
    assert.deepEqual(result.vipHolders, ['master1', 'master3']);
    assert.match(result.vipSeenAt ?? '', /^final-check/);
    assert.deepEqual(result.gates.map((g) => [g.gate, g.ok]), [['final-check', false]]);
  });

  it('recap: a final check failing on one master (kubectl refused there) marks only that master', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook({ timeoutSeconds: 0.1 })).converge();
    fc.host('master3').kubectl = 'refused';
    const { result } = await rollout(fc);
    assert.ok(result.error instanceof GateError);
    assert.deepEqual(result.recap.map((r) => [r.host, r.failed]), [['master1', 0], ['master2', 0], ['master3', 1]]);
    assert.deepEqual(result.vipHolders, ['master1']);
  });

  it('preflight: an apiserver refusing anonymous /readyz (401) stops the run before any change, naming both ways out', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master2').readyz = '401';
    const before = ALL.map((n) => fc.host(n).snapshot());
    const { result } = await rollout(fc);
    assert.ok(result.error instanceof ManyErrors, String(result.error));
    assert.match(result.error.message, /refuse anonymous \/readyz: no host was changed/);
    assert.match(result.error.errors[0]!.hint ?? '', /haproxy_health_check=tcp/);
    assert.deepEqual(ALL.map((n) => fc.host(n).snapshot()), before);
    assert.deepEqual(ALL.map((n) => fc.host(n).kinds()), [['lock'], ['lock'], ['lock']], 'the probe rides with the facts: no other command');
    assert.deepEqual(result.recap.map((r) => [r.host, r.failed]), [['master1', 0], ['master2', 1], ['master3', 0]]);
  });

  it('preflight: with haproxy_health_check=tcp nothing asks /readyz, and a 401 does not matter', async () => {
    const fc = new FakeCluster({ ...cluster(), haproxyHealthCheck: 'tcp' }, fastPlaybook());
    fc.host('master2').readyz = '401';
    const { result } = await rollout(fc);
    assert.equal(result.error, undefined, String(result.error));
    assert.ok(fc.host('master2').commands.every((c) => !c.script.includes('preflight readyz')));
  });
});
