// Changing a running cluster (issue 9), measured: a probe loop inside master3 (never the VIP holder
// here) requests https://VIP:8443/version every 50 ms (1 s deadline each) while kha-deploy changes the
// cluster; the kernel's address events in every host trace where the VIP is. Each change converges in
// ONE run with exit 0. haproxy-only and keepalived-only changes: the non-holders first, the holder
// last, no probe fails and the VIP never moves. A change of primary (priorities swapped): one VIP move,
// master1 → master2, confirmed by the gate; at most the requests in flight while it moves may fail.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { lab, requireLab, vipHolders } from '../helpers/lab.js';
import { measureChange, type ChangeFigures } from '../helpers/change.js';

const PROBE_FROM = 'master3';
/** Requests in flight when the VIP moves: a 1 s deadline at a 50 ms pace is at most 20; the move itself takes well under that. */
const MOVE_BOUND = 20;

type Figures = ChangeFigures;
const figures: Figures[] = [];

async function measured(scenario: string, inventory: string): Promise<Figures> {
  const { figures: f, run, probeText } = await measureChange(scenario, inventory, PROBE_FROM);
  figures.push(f);
  console.log(`[change] ${JSON.stringify(f)}`);
  if (probeText) console.log(probeText);
  assert.equal(run.code, 0, describeRun(run));
  return f;
}

describe('changing a running cluster (issue 9)', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  after(async () => {
    // Back to the lab's own inventory (itself a change of primary, master2 → master1): one run.
    const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    console.log(`[change] figures: ${JSON.stringify(figures)}`);
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('haproxy-only change (haproxy_balance=leastconn): master2, master3, then the holder master1; no failed probe, no VIP move', async () => {
    const f = await measured('haproxy-only', labInventory(['haproxy_balance=leastconn']));
    assert.deepEqual(f.order, ['master2', 'master3', 'master1']);
    assert.equal(f.failed, 0);
    assert.deepEqual(f.moves, []);
  });

  it('keepalived-only change (advert_int=2): holder last; no failed probe, no VIP move', async () => {
    const f = await measured('keepalived-only', labInventory(['haproxy_balance=leastconn', 'advert_int=2']));
    assert.deepEqual(f.order, ['master2', 'master3', 'master1']);
    assert.equal(f.failed, 0);
    assert.deepEqual(f.moves, []);
  });

  it('change of primary (master1 140, master2 150): one run, exit 0, one VIP move master1 → master2, at most the requests in flight fail', async () => {
    const inv = labInventory(['haproxy_balance=leastconn', 'advert_int=2'], {
      replace: [
        [/^master1 ansible_host=(\S+) priority=150$/m, 'master1 ansible_host=$1 priority=140'],
        [/^master2 ansible_host=(\S+)$/m, 'master2 ansible_host=$1 priority=150'],
      ],
    });
    const f = await measured('change-of-primary', inv);
    assert.deepEqual(await vipHolders(), ['master2']);
    assert.deepEqual(f.moves, ['master1 → master2']);
    assert.ok(f.failed <= MOVE_BOUND, `${f.failed} probes failed`);
  });
});
