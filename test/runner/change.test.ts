// Issue 9: changing a cluster that already runs. On the in-memory masters (test/helpers/fake-host.ts),
// with VRRP's real tie rule (vrrpHoldOnTie: a holder keeps the VIP against an equal priority).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GateError } from '../../src/errors.js';
import { runRollout, type RolloutResult } from '../../src/runner/rollout.js';
import type { ClusterSpec, RunEvent } from '../../src/types.js';
import { cluster } from '../fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook } from '../helpers/fake-host.js';
import { withPriorities } from '../helpers/priorities.js';

const CONFIG_KINDS = ['rundir', 'write', 'service', 'rollback'];

async function rollout(fc: FakeCluster, spec: ClusterSpec, onEvent?: (e: RunEvent) => void): Promise<{ result: RolloutResult; events: RunEvent[]; holders: string[][] }> {
  const events: RunEvent[] = [];
  const holders: string[][] = [];
  const result = await runRollout({
    spec,
    playbook: fc.playbook,
    hosts: spec.hosts,
    connect: fc.connect,
    emit: (e) => {
      events.push(e);
      onEvent?.(e);
      // Every change the VIP makes, as the model sees it (placement() is also where the tie rule is kept).
      const h = fc.vipHolders();
      if (JSON.stringify(holders.at(-1)) !== JSON.stringify(h)) holders.push(h);
    },
  });
  fc.assertNoSurprises();
  return { result, events, holders };
}

const changeOrder = (fc: FakeCluster, mark: number) => [...new Set(fc.log.slice(mark).filter((c) => CONFIG_KINDS.includes(c.kind)).map((c) => c.host))];

function converged(spec: ClusterSpec = cluster()): FakeCluster {
  const fc = new FakeCluster(spec, fastPlaybook({ timeoutSeconds: 0.5 })).converge();
  fc.vrrpHoldOnTie = true;
  assert.deepEqual(fc.vipHolders(), [spec.primary]);
  return fc;
}

describe('runRollout on a running cluster (issue 9)', () => {
  it('a haproxy-only change goes to the masters that do not hold the VIP first, the holder last; the VIP never moves', async () => {
    const fc = converged();
    const mark = fc.log.length;
    const { result, holders } = await rollout(fc, { ...fc.spec, haproxyBalance: 'leastconn' });
    assert.equal(result.error, undefined, String(result.error));
    assert.deepEqual(changeOrder(fc, mark), ['master2', 'master3', 'master1']);
    assert.deepEqual(holders, [['master1']]);
  });

  it('a first deploy keeps the primary first', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.vrrpHoldOnTie = true;
    const { result } = await rollout(fc, fc.spec);
    assert.equal(result.error, undefined, String(result.error));
    assert.deepEqual(changeOrder(fc, 0), ['master1', 'master2', 'master3']);
  });

  it('a swap of priorities (master2 becomes the primary) converges in one run with one VIP move, gated on the VIP reaching master2', async () => {
    const fc = converged();
    const spec = withPriorities(fc.spec, { master1: 140, master2: 150 });
    const { result, holders, events } = await rollout(fc, spec);
    assert.equal(result.error, undefined, String(result.error));
    assert.deepEqual(fc.vipHolders(), ['master2']);
    assert.deepEqual(holders, [['master1'], ['master2']], 'exactly one VIP move');
    const passes = events.flatMap((e) => (e.type === 'gate-pass' ? [`${e.host}:${e.gate}:${e.holder}`] : []));
    assert.ok(passes.some((p) => p.endsWith(':master2') && /vip-on-primary/.test(p)), passes.join(', '));
  });

  it('a new primary that is not the next in line (master3 at the top) converges in one run with one move', async () => {
    const fc = converged();
    const spec = withPriorities(fc.spec, { master1: 130, master2: 140, master3: 150 });
    const { result, holders } = await rollout(fc, spec);
    assert.equal(result.error, undefined, String(result.error));
    assert.deepEqual(holders, [['master1'], ['master3']]);
  });

  it('the holder keeps being primary with priorities raised past its old one: no move', async () => {
    const fc = converged();
    const spec = withPriorities(fc.spec, { master1: 200, master2: 190, master3: 180 });
    const { result, holders } = await rollout(fc, spec);
    assert.equal(result.error, undefined, String(result.error));
    assert.deepEqual(holders, [['master1']]);
  });

  it('a gate still fails when the VIP does not go where it should (a master that cannot serve)', async () => {
    const fc = converged();
    fc.host('master2').kubectl = 'refused';
    const { result } = await rollout(fc, { ...fc.spec, haproxyBalance: 'leastconn' });
    assert.ok(result.error instanceof GateError, String(result.error));
    assert.equal(result.error.host, 'master2');
    assert.deepEqual(changeOrder(fc, 0).filter((h) => h !== 'master2'), [], 'nothing after master2 was touched');
  });
});

describe('managed VRRP instance moves (issue 9): VRID, auth, VIP list, multicast/unicast', () => {
  /** A converged cluster whose model keeps VRRP instances apart (masters with another VRID/auth/unicast do not hear each other). */
  function instances(spec: ClusterSpec = cluster()): FakeCluster {
    const fc = converged(spec);
    fc.vrrpInstances = true;
    assert.deepEqual(fc.vipHolders(), [spec.primary]);
    return fc;
  }
  const noSplitBrain = (fc: FakeCluster) => {
    for (const h of fc.vipTrace) assert.ok(h.length <= 1, `the VIP was on ${h.join(' and ')} at once: ${JSON.stringify(fc.vipTrace)}`);
  };
  const orderOf = (fc: FakeCluster, mark: number) => fc.log.slice(mark).filter((c) => CONFIG_KINDS.includes(c.kind)).map((c) => `${c.host}:${c.kind}:${c.args.slice(0, 2).join(' ')}`);

  for (const [what, change] of [
    ['virtual_router_id 51 → 52', (s: ClusterSpec): ClusterSpec => ({ ...s, virtualRouterId: 52 })],
    ['vrrp_auth_pass changed', (s: ClusterSpec): ClusterSpec => ({ ...s, vrrpAuthPass: 'n3wpass' })],
    ['multicast → unicast', (s: ClusterSpec): ClusterSpec => ({ ...s, vrrpUnicast: true })],
  ] as const) {
    it(`${what}: non-holders with keepalived stopped, the holder last, keepalived started on the others right after; never two holders; the rerun is a no-op`, async () => {
      const fc = instances();
      const spec = change(fc.spec);
      const mark = fc.log.length;
      const { result, events } = await rollout(fc, spec);
      assert.equal(result.error, undefined, String(result.error));
      noSplitBrain(fc);
      assert.deepEqual(fc.vipHolders(), ['master1']);
      const ops = orderOf(fc, mark);
      // master2 and master3: stop first, no keepalived start of their own; master1 last, then the two starts.
      const firstStart = ops.findIndex((o) => /keepalived enable-start/.test(o));
      const holderReload = ops.indexOf('master1:service:keepalived reload');
      assert.ok(ops.indexOf('master2:service:keepalived stop') === ops.findIndex((o) => o.startsWith('master2:')), ops.join('\n'));
      assert.ok(holderReload > 0 && firstStart > holderReload, ops.join('\n'));
      assert.deepEqual(ops.slice(firstStart).filter((o) => /keepalived enable-start/.test(o)).sort(), ['master2:service:keepalived enable-start', 'master3:service:keepalived enable-start']);
      assert.ok(!ops.some((o) => /master1:service:keepalived (stop|restart)/.test(o)), 'the holder is reloaded, never stopped or restarted');
      // The holder keeps answering for the VIP through its reload: a hold before, released after the others started.
      assert.deepEqual(fc.host('master1').vipHolds, ['add', 'release']);
      for (const n of ['master2', 'master3']) assert.deepEqual(fc.host(n).vipHolds, [], n);
      const phase = events.find((e) => e.type === 'phase' && e.phase === 'rollout');
      assert.match((phase as { message: string }).message, /master2 → master3 → master1 .*managed move/);
      // Every master runs the new instance now: a second run changes nothing, in 2 commands per master.
      const again = await rollout(fc, spec);
      assert.equal(again.result.error, undefined, String(again.result.error));
      for (const r of again.result.recap) assert.deepEqual([r.changed, r.commands], [0, 2], r.host);
    });
  }

  it('vip 10.0.0.100 → 10.0.0.101: gated on the old VIP on master1 while the others move, then on the new VIP on master1; never two holders', async () => {
    const fc = instances();
    const spec = { ...fc.spec, vip: '10.0.0.101' };
    fc.factsVip = spec.vip;
    const { result, events } = await rollout(fc, spec);
    assert.equal(result.error, undefined, String(result.error));
    noSplitBrain(fc);
    assert.deepEqual(fc.vipHolders(), ['master1']);
    assert.equal(fc.placement()[0]!.vip, '10.0.0.101');
    const phase = events.find((e) => e.type === 'phase' && e.phase === 'rollout');
    assert.match((phase as { message: string }).message, /master2 → master3 → master1 .*vip 10\.0\.0\.100 → 10\.0\.0\.101/);
    const again = await rollout(fc, spec);
    assert.equal(again.result.error, undefined, String(again.result.error));
    for (const r of again.result.recap) assert.deepEqual([r.changed, r.commands], [0, 2], r.host);
  });

  it("the holder's own instance recreated (its unicast_src_ip changes): keepalived stopped there first, the VIP moves to master2 and is confirmed, then master1 is changed and takes it back", async () => {
    const fc = instances(cluster({ vrrpUnicast: true }));
    const spec = { ...fc.spec, hosts: fc.spec.hosts.map((h) => (h.name === 'master1' ? { ...h, address: '10.0.0.21' } : h)) };
    const mark = fc.log.length;
    const { result, events } = await rollout(fc, spec);
    assert.equal(result.error, undefined, String(result.error));
    noSplitBrain(fc);
    assert.deepEqual(fc.vipTrace.slice(-3), [['master1'], ['master2'], ['master1']]);
    const ops = orderOf(fc, mark);
    assert.ok(ops.indexOf('master1:service:keepalived stop') < ops.indexOf('master1:write:/etc/keepalived/keepalived.conf'), ops.join('\n'));
    const passes = events.flatMap((e) => (e.type === 'gate-pass' ? [`${e.host}:${e.gate}:${e.holder}`] : []));
    assert.ok(passes.includes('master1:vip-moved-away:master2'), passes.join(', '));
    assert.deepEqual(fc.vipHolders(), ['master1']);
  });

  it('the same VRID change rolled out like any change (the old way) puts the VIP on two masters: what the managed move prevents', () => {
    const fc = instances();
    // master2 loads VRID 52 while master1 still runs 51: master2 is alone in its instance and takes the VIP.
    const h = fc.host('master2');
    h.units.keepalived.loaded = h.units.keepalived.loaded!.replace(/virtual_router_id 51/, 'virtual_router_id 52');
    assert.deepEqual(fc.vipHolders().sort(), ['master1', 'master2']);
  });

  it('a VRID change together with a new primary: one handover, to the new primary, gated', async () => {
    const fc = instances();
    const spec = { ...withPriorities(fc.spec, { master1: 140, master2: 150 }), virtualRouterId: 60 };
    const { result, events } = await rollout(fc, spec);
    assert.equal(result.error, undefined, String(result.error));
    noSplitBrain(fc);
    assert.deepEqual(fc.vipHolders(), ['master2']);
    const passes = events.flatMap((e) => (e.type === 'gate-pass' ? [`${e.host}:${e.gate}:${e.holder}`] : []));
    assert.ok(passes.includes('master1:vip-on-primary:master2'), passes.join(', '));
  });

  it('a run that stops after the non-holders (the holder cannot take its keepalived.conf) leaves the VIP on the holder; the rerun completes the move', async () => {
    const fc = instances();
    const spec = { ...fc.spec, virtualRouterId: 52 };
    fc.host('master1').rejectWrite('/etc/keepalived/keepalived.conf', 'Unknown keyword');
    const first = await rollout(fc, spec);
    assert.ok(first.result.error, 'the holder failed');
    noSplitBrain(fc);
    assert.deepEqual(fc.vipHolders(), ['master1'], 'the VIP stayed on the holder (old instance)');
    fc.host('master1').acceptWrites();
    const second = await rollout(fc, spec);
    assert.equal(second.result.error, undefined, String(second.result.error));
    noSplitBrain(fc);
    assert.deepEqual(fc.vipHolders(), ['master1']);
    for (const h of fc.all()) assert.equal(h.units.keepalived.active, 'active', h.name);
  });

  it('with --limit an instance move is refused before any change (the masters left out would keep the old instance)', async () => {
    const fc = instances();
    const spec = { ...fc.spec, virtualRouterId: 52 };
    const result = await runRollout({ spec, playbook: fc.playbook, hosts: spec.hosts.filter((h) => h.name !== 'master3'), connect: fc.connect, emit: () => {} });
    assert.ok(result.error, 'refused');
    assert.match(String((result.error as Error).message), /VRRP instance changes .*--limit.*no host was changed/);
    for (const h of fc.all()) assert.deepEqual(h.changes(), [], `${h.name} was changed`);
  });

  it('a change that keeps the instance (advert_int) is no move: reloads only, nothing stopped', async () => {
    const fc = instances();
    const mark = fc.log.length;
    const { result } = await rollout(fc, { ...fc.spec, advertInt: 2 });
    assert.equal(result.error, undefined, String(result.error));
    assert.ok(!orderOf(fc, mark).some((o) => /stop/.test(o)));
  });
});

describe('network preflight (issue 9)', () => {
  it('a machine that is not a master answers for the VIP: exit 1 naming its MAC, before any host is touched', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master2').neighbour = '10.0.0.100 dev ens192 lladdr 52:54:00:aa:bb:cc REACHABLE';
    const { result } = await rollout(fc, fc.spec);
    assert.ok(result.error, 'refused');
    assert.equal((result.error as { exitCode?: number }).exitCode, 1);
    assert.match(String((result.error as Error).message), /is in use by a machine that is not a master: no host was changed/);
    assert.match(JSON.stringify((result.error as { errors?: unknown[] }).errors?.map((e) => (e as Error).message)), /MAC 52:54:00:aa:bb:cc answers for it/);
    for (const h of fc.all()) assert.deepEqual(h.changes(), [], `${h.name} was changed`);
  });

  it('the VIP answered by a master (its own MAC) is fine; a no-op rerun still sends 2 commands per master', async () => {
    const fc = converged();
    fc.host('master2').neighbour = '10.0.0.100 dev ens192 lladdr 02:00:00:00:00:01 REACHABLE';
    fc.host('master3').neighbour = '10.0.0.100 dev ens192 lladdr 02:00:00:00:00:01 STALE';
    const { result } = await rollout(fc, fc.spec);
    assert.equal(result.error, undefined, String(result.error));
    for (const r of result.recap) assert.equal(r.commands, 2, r.host);
  });

  it('a router that is not a master advertises our VRID (first deploy): exit 1 naming it and a free VRID; the packages installed meanwhile, no file written', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master3').vrrpAdverts = ['10.0.0.77 51 100 2 10.0.0.200', '10.0.0.78 52 90 2 10.0.0.201'];
    const { result } = await rollout(fc, fc.spec);
    assert.equal((result.error as { exitCode?: number } | undefined)?.exitCode, 1, String(result.error));
    assert.match(String((result.error as Error).message), /virtual_router_id 51 is in use by a router that is not a master: no configuration was written \(keepalived and haproxy were installed on master1, master2, master3, not configured or started\)/);
    const errors = (result.error as { errors?: { message: string; hint?: string }[] }).errors ?? [];
    assert.match(errors[0]?.message ?? '', /10\.0\.0\.77 \(priority 100, VRRPv2, VIPs 10\.0\.0\.200; heard on master3\)/);
    assert.match(errors[0]?.hint ?? '', /virtual_router_id=53/);
    for (const h of fc.all()) assert.deepEqual(h.changes().map((c) => c.kind), ['packages'], `${h.name}: more than the packages`);
  });

  it('a VRID change towards a VRID a foreign router uses: refused before any host is changed', async () => {
    const fc = converged();
    fc.host('master2').vrrpAdverts = ['10.0.0.77 52 100 3 10.0.0.200'];
    const { result } = await rollout(fc, { ...fc.spec, virtualRouterId: 52 });
    assert.match(String((result.error as Error | undefined)?.message), /virtual_router_id 52 is in use by a router that is not a master: no host was changed/);
    for (const h of fc.all()) assert.deepEqual(h.changes(), [], `${h.name} was changed`);
  });

  it('adverts from a master itself are ours: a first deploy goes on', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    fc.host('master3').vrrpAdverts = [`${fc.spec.hosts.find((h) => h.name === 'master2')!.address} 51 140 2 10.0.0.100`];
    const { result } = await rollout(fc, fc.spec);
    assert.equal(result.error, undefined, String(result.error));
  });

  it('a converged cluster does not listen (keepalived runs our VRID): a foreign advert cannot be heard, the rerun stays 2 commands', async () => {
    const fc = converged();
    for (const h of fc.all()) h.vrrpAdverts = ['10.0.0.77 51 100 2 10.0.0.200'];
    const { result } = await rollout(fc, fc.spec);
    assert.equal(result.error, undefined, String(result.error));
    for (const r of result.recap) assert.equal(r.commands, 2, r.host);
  });

  it('with --limit a foreign MAC may be a master left out: a warning, not a refusal', async () => {
    const fc = converged();
    fc.host('master2').neighbour = '10.0.0.100 dev ens192 lladdr 52:54:00:aa:bb:cc REACHABLE';
    const spec = fc.spec;
    const events: RunEvent[] = [];
    const result = await runRollout({ spec, playbook: fc.playbook, hosts: spec.hosts.filter((h) => h.name !== 'master1'), connect: fc.connect, emit: (e) => events.push(e) });
    assert.equal(result.error, undefined, String(result.error));
    assert.ok(events.some((e) => e.type === 'warning' && /MAC 52:54:00:aa:bb:cc .*outside --limit/.test(e.message)));
  });
});

describe('subnet preflight (issue 9)', () => {
  it('an interface without an address in the VIP subnet on one master: exit 1 before any change, naming it', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook(), { hosts: { master3: { interfaces: [{ name: 'lo', addrs: ['127.0.0.1/8'] }, { name: 'ens192', addrs: ['192.168.7.13/24'] }] } } });
    const { result } = await rollout(fc, fc.spec);
    assert.ok(result.error, 'refused');
    assert.equal((result.error as { exitCode?: number }).exitCode, 1);
    assert.match((result.error as Error).message, /not in the subnet of one master's interface: no host was changed/);
    const errs = (result.error as { errors?: Error[] }).errors ?? [];
    assert.match(errs[0]?.message ?? '', /interface ens192 has no address in the VIP's subnet \(192\.168\.7\.13\/24\) on master3/);
    for (const h of fc.all()) assert.deepEqual(h.changes(), [], `${h.name} was changed`);
  });
});
