// Managed VRRP instance moves (issue 9), measured on the lab: a probe loop inside master3 requests
// https://VIP:8443/version every 50 ms (1 s deadline each) while kha-deploy changes the VRRP instance
// itself; the kernel's address events in every host trace the VIP. A VRID change and a switch
// multicast → unicast each converge in ONE run with exit 0, the VIP never on two masters at once and
// handed over at most once (here it leaves master1 with the old instance and comes back with the new
// one). Then, with VRRP multicast dropped between the lab hosts (a DROP rule for 224.0.0.18 in the
// Docker host's DOCKER-USER chain, before lab/up.sh's ACCEPT; always removed), unicast still elects one
// holder and fails over when keepalived stops on it; the same DROP with multicast VRRP (the control) puts the
// VIP on several masters.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { lab, requireLab, startUnit, stopUnit, vipHolders } from '../helpers/lab.js';
import { traceVip, waitForVipOn } from '../helpers/failover.js';
import { measureChange, vipOverlap, type ChangeFigures } from '../helpers/change.js';

const run = promisify(execFile);
const PROBE_FROM = 'master3';
/** The new instance elects after its master-down interval (3 × advert_int + skew ≈ 3.4 s at advert_int 1): requests in flight meanwhile fail. */
const GAP_BOUND_MS = 6000;
const DROP_RULE = ['DOCKER-USER', '-d', '224.0.0.18', '-j', 'DROP'];

const figures: ChangeFigures[] = [];

async function measured(scenario: string, inventory: string): Promise<ChangeFigures> {
  const { figures: f, run: r, probeText } = await measureChange(scenario, inventory, PROBE_FROM);
  figures.push(f);
  console.log(`[vrrp-move] ${JSON.stringify(f)}`);
  if (probeText) console.log(probeText);
  assert.equal(r.code, 0, describeRun(r));
  assert.ok((r.json as { gates?: unknown[] } | undefined)?.gates, 'JSON output with gates');
  return f;
}

async function dropMulticast(on: boolean): Promise<void> {
  if (on) {
    await run('iptables', ['-I', ...DROP_RULE.slice(0, 1), '1', ...DROP_RULE.slice(1)]);
    return;
  }
  // Every copy, in case an earlier run died with one in place.
  for (let i = 0; i < 5; i++) {
    try {
      await run('iptables', ['-D', ...DROP_RULE]);
    } catch {
      return;
    }
  }
}

describe('managed VRRP instance moves on the lab (issue 9)', { concurrency: false }, () => {
  const VRID = ['virtual_router_id=52'];
  const UNICAST = ['virtual_router_id=52', 'vrrp_unicast=true'];

  before(async () => {
    await requireLab();
    await dropMulticast(false);
    const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  after(async () => {
    await dropMulticast(false);
    for (const h of lab.hosts) await startUnit(h.name, 'keepalived').catch(() => {});
    // Back to the lab's own inventory: unicast → multicast and VRID 52 → 51, itself a managed move.
    const f = await measureChange('back: unicast → multicast, VRID 51', lab.inventoryPath, PROBE_FROM);
    figures.push(f.figures);
    console.log(`[vrrp-move] ${JSON.stringify(f.figures)}`);
    console.log(`[vrrp-move] figures: ${JSON.stringify(figures)}`);
    assert.equal(f.run.code, 0, describeRun(f.run));
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('virtual_router_id 51 → 52: one run, exit 0, non-holders first with keepalived stopped, the holder last; never two holders, one drop of the VIP', async () => {
    const f = await measured('vrid 51 → 52', labInventory(VRID));
    assert.deepEqual(f.order, ['master2', 'master3', 'master1']);
    assert.ok((f.maxHolders ?? 0) <= 1, `split brain: the VIP on ${f.maxHolders} masters at once`);
    assert.ok(f.moves.length <= 1, `VIP moves: ${f.moves.join(', ')}`);
    assert.ok(f.longestGapMs <= GAP_BOUND_MS, `longest gap ${f.longestGapMs} ms`);
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('control: multicast VRRP with 224.0.0.18 dropped between the hosts puts the VIP on several masters (what unicast avoids)', async () => {
    const trace = await traceVip();
    try {
      await dropMulticast(true);
      // The backups stop hearing master1: each takes the VIP after its master-down interval (≈ 3.5 s).
      await trace.waitFor(() => trace.holders().length > 1, 10_000, 'a second holder');
    } finally {
      await dropMulticast(false);
    }
    await waitForVipOn('master1', 10_000);
    const deadline = Date.now() + 10_000;
    while ((await vipHolders()).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const o = vipOverlap(await trace.stop());
    console.log(`[vrrp-move] control, multicast dropped: up to ${o.maxHolders} holders at once`);
    assert.ok(o.maxHolders > 1);
    assert.deepEqual(await vipHolders(), ['master1'], 'one holder again once multicast passes');
  });

  it('multicast → unicast (vrrp_unicast=true): one run, exit 0, never two holders', async () => {
    const f = await measured('multicast → unicast', labInventory(UNICAST));
    assert.ok((f.maxHolders ?? 0) <= 1, `split brain: the VIP on ${f.maxHolders} masters at once`);
    assert.ok(f.moves.length <= 1, `VIP moves: ${f.moves.join(', ')}`);
    assert.ok(f.longestGapMs <= GAP_BOUND_MS, `longest gap ${f.longestGapMs} ms`);
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('unicast with VRRP multicast dropped between the hosts: one holder, and failover works', async () => {
    const trace = await traceVip();
    try {
      await dropMulticast(true);
      // Longer than the master-down interval: with multicast, every backup would have taken the VIP by now.
      await new Promise((r) => setTimeout(r, 5000));
      assert.deepEqual(await vipHolders(), ['master1']);
      const t0 = Date.now();
      await stopUnit('master1', 'keepalived');
      await waitForVipOn('master2', 15_000);
      const failoverMs = Date.now() - t0;
      await startUnit('master1', 'keepalived');
      await waitForVipOn('master1', 20_000);
      const o = vipOverlap(await trace.stop());
      console.log(`[vrrp-move] unicast without multicast: failover to master2 after ${failoverMs} ms (at the test's clock); back on master1 by preemption, the VIP on 2 masters for ${o.overlapMs} ms at most (max holders ${o.maxHolders})`);
      // Only the moment of a handover (the new MASTER adds the VIP before the old one drops it), never a lasting second holder.
      assert.ok(o.overlapMs < 1000, `split brain: the VIP on ${o.maxHolders} masters for ${o.overlapMs} ms`);
    } finally {
      await trace.stop().catch(() => {});
      await dropMulticast(false);
    }
  });
});
