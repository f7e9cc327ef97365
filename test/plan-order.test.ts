// The change order (src/plan-order.ts): first deploy vs a running cluster, and VRRP's election simulated
// so that a change of primary moves the VIP once.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkReport, checkText } from '../src/commands/check.js';
import { changeOrder, elect, instanceChanges, runningOrder, type OrderInput } from '../src/plan-order.js';
import type { HostFacts, HostPlan } from '../src/types.js';
import { cluster } from './fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook } from './helpers/fake-host.js';
import { parseFacts } from '../src/facts.js';
import { planHost } from '../src/plan.js';
import { withPriorities } from './helpers/priorities.js';

const inp = (name: string, running: number | null, next: number, changes = true): OrderInput => ({ name, running, next, changes });

describe('elect: VRRP with preemption', () => {
  const order = ['a', 'b', 'c'];
  it('a strictly higher priority takes the VIP; an equal one does not', () => {
    assert.equal(elect(new Map([['a', 150], ['b', 150], ['c', 130]]), 'a', order), 'a');
    assert.equal(elect(new Map([['a', 150], ['b', 150], ['c', 130]]), 'b', order), 'b');
    assert.equal(elect(new Map([['a', 140], ['b', 150], ['c', 130]]), 'a', order), 'b');
  });
  it('nobody holding, or the holder not running: the highest takes it', () => {
    assert.equal(elect(new Map([['a', 140], ['b', 150], ['c', null]]), null, order), 'b');
    assert.equal(elect(new Map([['a', null], ['b', 130], ['c', 140]]), 'a', order), 'c');
  });
});

describe('runningOrder', () => {
  it('no priority change: the non-holders in the given order, the holder last, the VIP stays', () => {
    const r = runningOrder([inp('m1', 150, 150), inp('m2', 140, 140), inp('m3', 130, 130)], 'm1', 'm1', true);
    assert.deepEqual(r.steps.map((s) => [s.host, s.expectHolder, s.moves]), [['m2', 'm1', false], ['m3', 'm1', false], ['m1', 'm1', false]]);
    assert.equal(r.moves, 0);
  });
  it('swap m1 150 ↔ m2 140: holder last, one move when m1 is lowered, straight to m2', () => {
    const r = runningOrder([inp('m2', 140, 150), inp('m1', 150, 140), inp('m3', 130, 130, false)], 'm1', 'm2', true);
    assert.deepEqual(r.steps.map((s) => [s.host, s.expectHolder, s.moves]), [['m3', 'm1', false], ['m2', 'm1', false], ['m1', 'm2', true]]);
    assert.equal(r.moves, 1);
  });
  it('the holder lowered below a backup that is raised later: the raise first, so the VIP moves once to the new primary', () => {
    // m1 150 → 120, m2 140 → 130, m3 130 → 160: in the plain order (m2, m3, m1) m3 takes it at once and keeps it: one move.
    const r = runningOrder([inp('m3', 130, 160), inp('m2', 140, 130), inp('m1', 150, 120)], 'm1', 'm3', true);
    assert.equal(r.moves, 1);
    assert.equal(r.steps.find((s) => s.moves)?.expectHolder, 'm3');
  });
  it('the holder stays primary with every priority raised past its old one: the holder first, no move', () => {
    const r = runningOrder([inp('m1', 150, 200), inp('m2', 140, 190), inp('m3', 130, 180)], 'm1', 'm1', true);
    assert.deepEqual(r.steps.map((s) => s.host), ['m1', 'm2', 'm3']);
    assert.equal(r.moves, 0);
  });
  it('a holder that is not the primary (the primary returns after a failure) gives the VIP up in one move', () => {
    const r = runningOrder([inp('m1', null, 150), inp('m2', 140, 140, false), inp('m3', 130, 130, false)], 'm2', 'm1', true);
    assert.deepEqual(r.steps.filter((s) => s.changes).map((s) => [s.host, s.expectHolder, s.moves]), [['m1', 'm1', true]]);
  });
  it('no preemption: no expectation beyond one holder, holder last', () => {
    const r = runningOrder([inp('m1', 150, 140), inp('m2', 140, 150), inp('m3', 130, 130)], 'm1', 'm2', false);
    assert.deepEqual(r.steps.map((s) => [s.host, s.expectHolder]), [['m2', undefined], ['m3', undefined], ['m1', undefined]]);
  });
});

function factsOf(fc: FakeCluster): { name: string; facts: HostFacts; plan: HostPlan }[] {
  return fc.all().map((h) => {
    const facts = parseFacts(h.name, h.factsText(), fc.spec.vip);
    return { name: h.name, facts, plan: planHost(fc.spec, h.spec, facts, fc.playbook) };
  });
}

describe('changeOrder and check', () => {
  it('fresh masters: first deploy, primary first, every step expects the primary', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const o = changeOrder(fc.spec, factsOf(fc));
    assert.equal(o.mode, 'first-deploy');
    assert.deepEqual(o.steps.map((s) => [s.host, s.expectHolder]), [['master1', 'master1'], ['master2', 'master1'], ['master3', 'master1']]);
  });
  it('a converged cluster with a change: the holder last; check prints the same order', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const spec = { ...fc.spec, haproxyBalance: 'leastconn' };
    const hosts = fc.all().map((h) => {
      const facts = parseFacts(h.name, h.factsText(), spec.vip);
      return { name: h.name, facts, plan: planHost(spec, h.spec, facts, fc.playbook) };
    });
    const o = changeOrder(spec, hosts);
    assert.equal(o.mode, 'running');
    assert.equal(o.holder, 'master1');
    assert.deepEqual(o.steps.map((s) => s.host), ['master2', 'master3', 'master1']);
    const report = checkReport(spec, hosts.map((h) => ({ host: h.name, plan: h.plan, current: {}, facts: h.facts })));
    assert.deepEqual(report.changeOrder, ['master2', 'master3', 'master1']);
    assert.match(checkText(report), /change master2 → master3 → master1, one at a time\norder: master1 holds the VIP: the other masters first, master1 last/);
  });
  it('check on a change of primary names the one VIP move', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const spec = withPriorities(fc.spec, { master1: 140, master2: 150 });
    const hosts = fc.all().map((h) => {
      const hs = spec.hosts.find((x) => x.name === h.name)!;
      const facts = parseFacts(h.name, h.factsText(), spec.vip);
      return { host: h.name, facts, plan: planHost(spec, hs, facts, fc.playbook), current: {} };
    });
    const report = checkReport(spec, hosts);
    assert.deepEqual(report.changeOrder.at(-1), 'master1');
    assert.match(report.changeOrderReason, /the VIP moves once, to master2, when master1 is changed/);
  });
});

describe('managed VRRP instance moves (issue 9)', () => {
  // The fake's route and addresses follow its own (old) VIP: the facts are read for that one.
  const planned = (fc: FakeCluster, spec: ReturnType<typeof cluster>) =>
    fc.all().map((h) => {
      const facts = parseFacts(h.name, h.factsText(), fc.spec.vip);
      return { name: h.name, facts, plan: planHost(spec, spec.hosts.find((x) => x.name === h.name)!, facts, fc.playbook) };
    });
  it('what changes the instance: VRID, VIP, multicast/unicast, auth (reported by the runner); not advert_int or priorities', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const base = fc.spec;
    const changes = (spec: ReturnType<typeof cluster>, authDiffers = false) => instanceChanges(spec, planned(fc, spec).map((h) => ({ ...h, authDiffers })));
    assert.deepEqual(changes({ ...base, virtualRouterId: 52 }), ['virtual_router_id 51 → 52']);
    assert.deepEqual(changes({ ...base, vip: '10.0.0.101' }), ['vip 10.0.0.100 → 10.0.0.101']);
    assert.deepEqual(changes({ ...base, vrrpUnicast: true }), ['multicast → unicast (vrrp_unicast=true)']);
    assert.deepEqual(changes(base, true), ['vrrp_auth_pass (value hidden)']);
    assert.deepEqual(changes({ ...base, advertInt: 2 }), []);
    assert.deepEqual(changes(withPriorities(base, { master1: 140, master2: 150 })), []);
  });
  it('a master whose keepalived does not run takes no part (its file may already be new)', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    for (const n of ['master1', 'master2', 'master3']) fc.host(n).units.keepalived.active = 'inactive';
    assert.deepEqual(instanceChanges({ ...fc.spec, virtualRouterId: 52 }, planned(fc, { ...fc.spec, virtualRouterId: 52 })), []);
  });
  it('the order: the non-holders with keepalived stopped, the holder last starting the others; check says so; --limit refuses', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const spec = { ...fc.spec, vip: '10.0.0.101' };
    const o = changeOrder(spec, planned(fc, spec));
    assert.deepEqual(o.instanceMove?.changes, ['vip 10.0.0.100 → 10.0.0.101']);
    assert.deepEqual(
      o.steps.map((s) => [s.host, s.keepalivedStopped === true, s.startAfter ?? null, s.expectHolder]),
      [['master2', true, null, 'master1'], ['master3', true, null, 'master1'], ['master1', false, ['master2', 'master3'], 'master1']],
    );
    assert.equal(o.refusal, undefined);
    assert.match(o.reason, /managed move\. master2, master3 first, each with keepalived stopped/);
    const limited = changeOrder(spec, planned(fc, spec).filter((h) => h.name !== 'master3'));
    assert.match(limited.refusal ?? '', /left out by --limit \(master3\)/);
    assert.equal(o.steps.at(-1)!.holdVip, undefined, 'a vip change: nothing to keep answering for');
  });
  it('the holder keeps answering for the VIP through its reload only when it stays the owner of the same VIP', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const vrid = { ...fc.spec, virtualRouterId: 52 };
    assert.equal(changeOrder(vrid, planned(fc, vrid)).steps.at(-1)!.holdVip, true);
    const newPrimary = withPriorities(vrid, { master1: 140, master2: 150 });
    const moved = changeOrder(newPrimary, planned(fc, newPrimary));
    assert.equal(moved.steps.at(-1)!.host, 'master1');
    assert.equal(moved.steps.at(-1)!.holdVip, undefined, 'the VIP goes to master2: master1 must not answer for it');
    const noPreempt = { ...vrid, vrrpPreempt: false };
    assert.equal(changeOrder(noPreempt, planned(fc, noPreempt)).steps.at(-1)!.holdVip, undefined);
  });
});
