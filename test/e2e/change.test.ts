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
import { hostExec, lab, requireLab, startUnit, stopUnit, vipHolders } from '../helpers/lab.js';
import { waitForVipOn } from '../helpers/failover.js';
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

describe('network preflight on the lab (issue 9)', { concurrency: false }, () => {
  const names = lab.hosts.map((h) => h.name);
  // A "foreign owner": the VIP on a macvlan in a network namespace of its own inside master3, so its
  // MAC is none of the masters' interfaces (master3's own `ip link` does not list it).
  const FOREIGN_UP = [
    'set -e',
    'ip netns add kha-foreign',
    'ip link add kha-fv link eth0 type macvlan mode bridge',
    'ip link set kha-fv netns kha-foreign',
    `ip netns exec kha-foreign ip addr add ${lab.vip}/24 dev kha-fv`,
    'ip netns exec kha-foreign ip link set kha-fv up',
    "ip netns exec kha-foreign cat /sys/class/net/kha-fv/address",
  ].join('\n');

  after(async () => {
    await hostExec('master3', 'ip netns del kha-foreign 2>/dev/null || :');
    for (const h of names) await startUnit(h, 'keepalived');
    await waitForVipOn('master1', 30_000);
    const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(r.code, 0, describeRun(r));
  });

  it('a machine that is not a master owns the VIP: exit 1 naming its MAC, nothing changed on any master', async () => {
    await requireLab();
    for (const h of names) await stopUnit(h, 'keepalived');
    const up = await hostExec('master3', FOREIGN_UP);
    assert.equal(up.code, 0, up.stderr);
    const mac = up.stdout.trim().split('\n').at(-1)!;
    const pids = await Promise.all(names.map((h) => hostExec(h, 'systemctl show -p MainPID --value haproxy; stat -c %Y /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf')));
    const r = await runCli(deployArgs(lab.inventoryPath));
    console.log(`[change] preflight refusal: exit ${r.code}`);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stdout + r.stderr, new RegExp(`MAC ${mac} answers for it`));
    assert.match(r.stdout + r.stderr, /no host was changed/);
    const after = await Promise.all(names.map((h) => hostExec(h, 'systemctl show -p MainPID --value haproxy; stat -c %Y /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf')));
    assert.deepEqual(after.map((x) => x.stdout), pids.map((x) => x.stdout));
    for (const h of names) assert.equal((await hostExec(h, 'systemctl is-active keepalived')).stdout.trim(), 'inactive', `keepalived was not started on ${h}`);
  });
});
