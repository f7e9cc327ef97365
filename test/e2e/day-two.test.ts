// Day-two commands on the lab: `check` (what a deploy would do, changing nothing) and `status`
// (health of every master), asserting on what the hosts show.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
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
    assert.match(r.stdout, /changes pending \(exit 3\): a deploy would change master1 → master2 → master3/);
    // deploy --check is the same command; its JSON is one document.
    const j = await runCli([...deployArgs(inv, '--check', '--output', 'json')]);
    assert.equal(j.code, 3, describeRun(j));
    assert.deepEqual(j.json.changeOrder, names);
    assert.ok(j.json.hosts.every((h: { files: { diff: string }[] }) => h.files.some((f) => f.diff.includes('+    balance leastconn'))));
    assert.deepEqual(await snapshotAll(), before);
    assert.deepEqual(await vipHolders(), ['master1']);
    await assertNoLockLeft();
  });
});
