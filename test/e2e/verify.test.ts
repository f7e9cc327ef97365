// `kha-deploy verify [--failover]` on the lab: the checks of a deploy on demand, and the failover drill,
// which must leave the cluster as it found it (also after an error and after Ctrl-C on a terminal).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { describeRun, runCli, startCli } from '../helpers/cli.js';
import { deployArgs } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, startUnit, stopUnit, unitInfo, vipHolders } from '../helpers/lab.js';
import { startCliInPty } from '../helpers/pty.js';

const names = lab.hosts.map((h) => h.name);
const CONFIGS = '/etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf';

async function converge(): Promise<void> {
  const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
  assert.equal(r.code, 0, describeRun(r));
}

/** What "as found" means on a host: configs (content), units active+enabled, no drill timer, no lock. */
async function hostState(host: string): Promise<string> {
  const r = await hostExec(
    host,
    [
      `sha256sum ${CONFIGS}`,
      'systemctl is-active keepalived haproxy; systemctl is-enabled keepalived haproxy',
      "systemctl list-units --all --no-legend 'kha-drill-*' | sed 's/^/drill unit: /'",
      'flock -n /run/lock/kha-deploy.lock echo lock free || echo lock held',
    ].join('; '),
  );
  return r.stdout;
}

async function clusterState(): Promise<Record<string, string>> {
  return Object.fromEntries(await Promise.all(names.map(async (h) => [h, await hostState(h)] as const)));
}

/** Waits until every unit runs and haproxy on master1 sees every apiserver UP again (after a unit was stopped by a test). */
async function waitHealthy(): Promise<void> {
  for (let i = 0; i < 60; i++) {
    const r = await runCli(['status', ...deployArgs(lab.inventoryPath), '--output', 'json']);
    if (r.code === 0) return;
    await new Promise((res) => setTimeout(res, 1000));
  }
  assert.fail('the lab did not become healthy again within 60 s');
}

describe('verify on the lab', { concurrency: false }, () => {
  let found: Record<string, string>;
  before(async () => {
    await requireLab();
    await converge();
    await waitHealthy();
    found = await clusterState();
    for (const h of names) assert.match(found[h]!, /^active\nactive\nenabled\nenabled\n(?!drill unit)/m, `${h} is not healthy before the tests:\n${found[h]}`);
  });

  it('verify on a healthy cluster: exit 0, names the holder, and changes nothing', async () => {
    const pids = await Promise.all(names.map((h) => unitInfo(h, 'keepalived').then((u) => u.mainPid)));
    const r = await runCli(['verify', ...deployArgs(lab.inventoryPath), '--output', 'json']);
    assert.equal(r.code, 0, describeRun(r));
    assert.equal(r.json.holder, 'master1');
    assert.deepEqual(r.json.kubectlFrom, names);
    assert.deepEqual(await vipHolders(), ['master1']);
    assert.deepEqual(await Promise.all(names.map((h) => unitInfo(h, 'keepalived').then((u) => u.mainPid))), pids);
  });

  it('verify with haproxy stopped on a backup: exit 1, and the error names that master', async () => {
    await stopUnit('master3', 'haproxy');
    try {
      const r = await runCli(['verify', ...deployArgs(lab.inventoryPath), '--gate-timeout', '3']);
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /error: \[master3\] verify: .*master3/);
    } finally {
      await startUnit('master3', 'haproxy');
    }
    await waitHealthy();
  });

  it('verify --failover refuses a cluster that is not healthy, and changes nothing', async () => {
    await stopUnit('master3', 'haproxy');
    try {
      const pid = (await unitInfo('master1', 'keepalived')).mainPid;
      const r = await runCli(['verify', '--failover', ...deployArgs(lab.inventoryPath)]);
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /refusing to drill: the cluster is not healthy now \(nothing was changed\)[\s\S]*haproxy is inactive on master3/);
      assert.equal((await unitInfo('master1', 'keepalived')).mainPid, pid);
      assert.deepEqual(await vipHolders(), ['master1']);
    } finally {
      await startUnit('master3', 'haproxy');
    }
    await waitHealthy();
  });

  it('verify --failover: the VIP moves to master2 and back for each scenario, figures in the table and the JSON, the cluster as found', async () => {
    const r = await runCli(['verify', '--failover', ...deployArgs(lab.inventoryPath), '--output', 'json'], { timeoutMs: 240_000 });
    assert.equal(r.code, 0, describeRun(r));
    const j = r.json;
    assert.deepEqual(j.roles, { holder: 'master1', next: 'master2', prober: 'master3' });
    assert.deepEqual(
      j.scenarios.map((s: { scenario: string; away: { to: string }; back: { to: string } }) => [s.scenario, s.away.to, s.back.to]),
      [
        ['keepalived', 'master2', 'master1'],
        ['haproxy', 'master2', 'master1'],
      ],
    );
    for (const s of j.scenarios) {
      for (const leg of [s.away, s.back]) {
        assert.ok(leg.probes > 10 && leg.vipMs > 0 && leg.vipMs < 30_000 && leg.recovered, JSON.stringify(s));
        assert.ok(leg.failed <= leg.probes && leg.apiGapMs >= 0, JSON.stringify(s));
      }
    }
    assert.equal(j.restored, true);
    assert.deepEqual(await vipHolders(), ['master1']);
    assert.deepEqual(await clusterState(), found);
  });

  it('an error mid-drill (the next master cannot take the VIP): exit 1, the error says so, and what the drill stopped runs again', async () => {
    const run = startCli(['verify', '--failover', ...deployArgs(lab.inventoryPath), '--gate-timeout', '4'], { timeoutMs: 180_000 });
    await run.waitFor(/keepalived: stopping keepalived on master1/, 60_000);
    // The test, not the drill, stops keepalived on master2: the VIP goes to master3 instead.
    await stopUnit('master2', 'keepalived');
    try {
      // Once the drill puts back what it stopped, the test puts back what it stopped.
      await run.waitFor(/restoring: starting keepalived on master1/, 60_000);
      await startUnit('master2', 'keepalived');
      const r = await run.done;
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master2\] drill-away: the VIP did not reach master2 within 4 s after keepalived was stopped on master1/);
      assert.match(r.stdout, /restoring: starting keepalived on master1/);
      assert.match(r.stdout, /drill stopped: the VIP did not reach master2[\s\S]*cluster left as found: VIP on master1/);
      assert.equal((await unitInfo('master1', 'keepalived')).activeState, 'active');
      const t = await hostExec('master1', "systemctl list-units --all --no-legend 'kha-drill-*'");
      assert.equal(t.stdout.trim(), '', `a drill timer was left on master1: ${t.stdout}`);
    } finally {
      await startUnit('master2', 'keepalived');
    }
    await waitHealthy();
    assert.deepEqual(await vipHolders(), ['master1']);
    assert.deepEqual(await clusterState(), found);
  });

  it('Ctrl-C on a terminal mid-drill: exit 130, keepalived runs again on the holder, the VIP back on master1, no timer or lock left', async () => {
    const pty = startCliInPty(['verify', '--failover', ...deployArgs(lab.inventoryPath)]);
    await pty.waitFor(/VIP on master2 after/, 60_000);
    assert.equal((await unitInfo('master1', 'keepalived')).activeState, 'inactive');
    pty.type('\x03');
    const r = await pty.done;
    assert.equal(r.code, 130, r.screen);
    assert.match(r.screen, /stopping the drill and putting back what it stopped/);
    assert.match(r.screen, /restoring: starting keepalived on master1/);
    assert.equal((await unitInfo('master1', 'keepalived')).activeState, 'active');
    await waitHealthy();
    assert.deepEqual(await vipHolders(), ['master1']);
    assert.deepEqual(await clusterState(), found);
  });
});
