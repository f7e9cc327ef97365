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
