// Day-two commands on the lab: `check` (what a deploy would do, changing nothing) and `status`
// (health of every master), asserting on what the hosts show.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, startUnit, stopUnit, vipHolders } from '../helpers/lab.js';

const names = lab.hosts.map((h) => h.name);
const MANAGED = ['/etc/haproxy/haproxy.cfg', '/etc/keepalived/keepalived.conf', '/etc/tmpfiles.d/kha-deploy-haproxy.conf'];

/** What a read-only command must leave unchanged on a host: managed files (mtime, inode), MainPIDs, backups. */
async function snapshot(host: string): Promise<string> {
  const r = await hostExec(
    host,
    [
      `stat -c '%n %Y.%y %i' ${MANAGED.join(' ')} /var/lib/kha-deploy/*.applied`,
      'systemctl show -p MainPID --value keepalived haproxy',
      "find /etc/haproxy /etc/keepalived /etc/tmpfiles.d -name '*.kha-backup-*' | sort",
    ].join('; '),
  );
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

async function snapshotAll(): Promise<Record<string, string>> {
  return Object.fromEntries(await Promise.all(names.map(async (h) => [h, await snapshot(h)] as const)));
}

async function assertNoLockLeft(): Promise<void> {
  for (const h of names) {
    const r = await hostExec(h, 'flock -n /run/lock/kha-deploy.lock true');
    assert.equal(r.code, 0, `the run lock is still held on ${h}: ${r.stderr}`);
  }
}

async function converge(): Promise<void> {
  const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
  assert.equal(r.code, 0, describeRun(r));
}

describe('day-two commands on the lab', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await converge();
  });

  it('check on a converged cluster: exit 0, and it touches nothing (files, PIDs, VIP, backups, lock)', async () => {
    const before = await snapshotAll();
    const vip = await vipHolders();
    const r = await runCli(['check', ...deployArgs(lab.inventoryPath)]);
    assert.equal(r.code, 0, describeRun(r));
    for (const h of names) assert.match(r.stdout, new RegExp(`^${h} \\((primary|backup)\\): converged, nothing to do$`, 'm'));
    assert.match(r.stdout, /converged: a deploy would change nothing/);
    assert.deepEqual(await snapshotAll(), before);
    assert.deepEqual(await vipHolders(), vip);
    await assertNoLockLeft();
  });

  it('check with haproxy_balance=leastconn: exit 3, the diff for every master, and still nothing touched', async () => {
    const before = await snapshotAll();
    const inv = labInventory(['haproxy_balance=leastconn']);
    const r = await runCli(['check', ...deployArgs(inv)]);
    assert.equal(r.code, 3, describeRun(r));
    const blocks = r.stdout.split(/\n(?=master\d \()/);
    for (const h of names) {
      const block = blocks.find((b) => b.startsWith(`${h} (`)) ?? '';
      const lines = block.split('\n').map((l) => l.replace(/^ {4}/, ''));
      assert.ok(lines.includes('-    balance roundrobin'), `${h}:\n${block}`);
      assert.ok(lines.includes('+    balance leastconn'), `${h}:\n${block}`);
      assert.match(block, /unit haproxy: reload/);
    }
    // A running cluster: the masters without the VIP first, its holder last.
    assert.match(r.stdout, /changes pending \(exit 3\): a deploy would change master2 → master3 → master1/);
    assert.match(r.stdout, /order: master1 holds the VIP: the other masters first, master1 last/);
    // deploy --check is the same command; its JSON is one document.
    const j = await runCli([...deployArgs(inv, '--check', '--output', 'json')]);
    assert.equal(j.code, 3, describeRun(j));
    assert.deepEqual(j.json.changeOrder, ['master2', 'master3', 'master1']);
    assert.ok(j.json.hosts.every((h: { files: { diff: string }[] }) => h.files.some((f) => f.diff.includes('+    balance leastconn'))));
    assert.deepEqual(await snapshotAll(), before);
    assert.deepEqual(await vipHolders(), ['master1']);
    await assertNoLockLeft();
  });

  it('check with a new vrrp_auth_pass: exit 3, the managed instance move deploy would make (compared on the hosts through a salted hash), the pass never printed, nothing touched', async () => {
    const before = await snapshotAll();
    const PASS = 'Kh4pAss9';
    const r = await runCli(['check', ...deployArgs(labInventory([`vrrp_auth_pass=${PASS}`]))]);
    assert.equal(r.code, 3, describeRun(r));
    assert.match(r.stdout, /changes pending \(exit 3\): a deploy would change master2 → master3 → master1/);
    assert.match(r.stdout, /^order: the VRRP instance changes \(vrrp_auth_pass \(value hidden\)\): a managed move\. master2, master3 first, each with keepalived stopped \(the VIP stays on master1\), master1 last/m);
    assert.ok(!`${r.stdout}${r.stderr}`.includes(PASS), 'the pass is printed');
    assert.deepEqual(await snapshotAll(), before);
    assert.deepEqual(await vipHolders(), ['master1']);
    await assertNoLockLeft();
  });

  it('status on a healthy cluster: exit 0; its JSON names master1 as holder with every backend UP', async () => {
    const r = await runCli(['status', ...deployArgs(lab.inventoryPath, '--output', 'json')]);
    assert.equal(r.code, 0, describeRun(r));
    assert.ok(r.json, `stdout is one JSON document:\n${r.stdout}`);
    assert.equal(r.json.healthy, true);
    assert.deepEqual(r.json.vipHolders, ['master1']);
    assert.deepEqual(r.json.reasons, []);
    for (const h of r.json.hosts) {
      assert.deepEqual([h.keepalived, h.haproxy], [{ active: 'active', enabled: 'enabled' }, { active: 'active', enabled: 'enabled' }], h.host);
      assert.equal(h.vrrpState, h.host === 'master1' ? 'MASTER' : 'BACKUP');
      assert.equal(h.priority, h.host === 'master1' ? 150 : h.host === 'master2' ? 140 : 130);
      assert.deepEqual(h.backends.map((b: { name: string; status: string }) => [b.name, b.status]), names.map((n) => [n, 'UP']), h.host);
      assert.deepEqual(h.drift, []);
    }
    const t = await runCli(['status', ...deployArgs(lab.inventoryPath)]);
    assert.equal(t.code, 0, describeRun(t));
    assert.match(t.stdout, /^master1\* +active\/enabled +active\/enabled +MASTER +150 +HOLDS VIP +3\/3 UP +none$/m);
    assert.ok(!t.stdout.includes('\x1b['), 'no colour when stdout is not a terminal');
    await assertNoLockLeft();
  });

  it('status with haproxy stopped on master3: exit 1 and the reasons name master3', async () => {
    try {
      await stopUnit('master3', 'haproxy');
      const r = await runCli(['status', ...deployArgs(lab.inventoryPath, '--output', 'json')]);
      assert.equal(r.code, 1, describeRun(r));
      assert.equal(r.json.healthy, false);
      assert.deepEqual(r.json.vipHolders, ['master1']);
      assert.ok(r.json.reasons.some((x: string) => /haproxy is inactive on master3/.test(x)), r.json.reasons.join('\n'));
      const m3 = r.json.hosts.find((h: { host: string }) => h.host === 'master3');
      assert.equal(m3.haproxy.active, 'inactive');
      assert.ok(m3.problems.length > 0);
      assert.deepEqual(r.json.hosts.filter((h: { problems: string[] }) => h.problems.length > 0).map((h: { host: string }) => h.host), ['master3']);
      const t = await runCli(['status', ...deployArgs(lab.inventoryPath)]);
      assert.equal(t.code, 1, describeRun(t));
      assert.match(t.stdout, /^DEGRADED \(exit 1\):$/m);
      assert.match(t.stdout, /^ {2}- haproxy is inactive on master3$/m);
    } finally {
      await startUnit('master3', 'haproxy');
      await converge();
    }
  });
});
