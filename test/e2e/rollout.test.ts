// The rollout on the lab, asserting on what the hosts show (ip -o addr, systemctl show, files).
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { hostExec, lab, requireLab, resetHosts, startUnit, stopUnit, unitInfo, vipHolders } from '../helpers/lab.js';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs as baseArgs, labInventory } from '../helpers/inventory.js';

const names = lab.hosts.map((h) => h.name);
const deployArgs = (inventory: string, ...extra: string[]) => baseArgs(inventory, '--output', 'json', ...extra);

/** haproxy's worker PIDs: children of the master process; a reload replaces them, a restart replaces the master too. */
async function haproxyWorkers(host: string): Promise<string> {
  return (await hostExec(host, 'pgrep -P "$(systemctl show -p MainPID --value haproxy)" | sort | tr "\\n" " "')).stdout;
}

async function sha(host: string, path: string): Promise<string> {
  const r = await hostExec(host, `sha256sum ${path} | cut -d' ' -f1`);
  return r.stdout.trim();
}

/** Sample VIP holders every 200 ms while `during` runs; returns every distinct observation. */
async function sampleVip<T>(during: () => Promise<T>): Promise<{ result: T; seen: Set<string> }> {
  const seen = new Set<string>();
  let running = true;
  const sampler = (async () => {
    while (running) {
      seen.add((await vipHolders()).join(',') || '(nobody)');
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  try {
    const result = await during();
    return { result, seen };
  } finally {
    running = false;
    await sampler;
  }
}

describe('rollout on the lab', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await resetHosts();
  });

  it('first rollout: VIP on the primary only, both units active and enabled everywhere, kubectl through the VIP from every master', async () => {
    const r = await runCli(deployArgs(lab.inventoryPath));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await vipHolders(), ['master1']);
    // Every gate that passed is reported once, with the holder and the Server Version it saw.
    assert.deepEqual(
      r.json.gates.map((g: { host: string; gate: string; ok: boolean; holder: string; serverVersion: string }) => [g.host, g.gate, g.ok, g.holder, g.serverVersion]),
      [
        ['master1', 'vip-on-primary', true, 'master1', 'v1.30.0'],
        ['master2', 'vip-still-on-primary-only', true, 'master1', 'v1.30.0'],
        ['master3', 'vip-still-on-primary-only', true, 'master1', 'v1.30.0'],
        ['master1', 'final-check', true, 'master1', 'v1.30.0'],
      ],
    );
    assert.deepEqual(r.json.vipHolders, ['master1']);
    for (const h of names) {
      for (const unit of ['keepalived', 'haproxy']) {
        const u = await unitInfo(h, unit);
        assert.equal(u.activeState, 'active', `${unit} on ${h}`);
        assert.equal(u.unitFileState, 'enabled', `${unit} on ${h}`);
        assert.ok(u.mainPid > 0);
      }
      const dir = await hostExec(h, 'test -d /run/haproxy && grep -rls "/run/haproxy" /etc/tmpfiles.d /usr/lib/tmpfiles.d');
      assert.equal(dir.code, 0, `/run/haproxy and its tmpfiles entry on ${h}: ${dir.stderr}`);
      const k = await hostExec(h, `kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://${lab.vip}:8443 version`);
      assert.match(k.stdout, /Server Version/, `kubectl via VIP on ${h}: ${k.stdout}${k.stderr}`);
      const cfg = await hostExec(h, 'cat /etc/haproxy/haproxy.cfg');
      for (const m of lab.hosts) assert.match(cfg.stdout, new RegExp(`server ${m.name} ${m.address.replace(/\./g, '\\.')}:6443 check`));
      const ka = await hostExec(h, 'cat /etc/keepalived/keepalived.conf');
      assert.match(ka.stdout, /virtual_router_id 51/);
      assert.match(ka.stdout, new RegExp(`priority ${h === 'master1' ? 150 : h === 'master2' ? 140 : 130}\\b`));
      assert.ok(ka.stdout.includes(lab.vip));
    }
  });

  it('rerun on the converged cluster: exit 0, changed=0, no file written, no restart or reload, VIP unmoved', async () => {
    const before = new Map<string, { ka: unknown; ha: unknown; files: string; workers: string }>();
    for (const h of names) {
      before.set(h, {
        ka: await unitInfo(h, 'keepalived'),
        ha: await unitInfo(h, 'haproxy'),
        files: (await hostExec(h, 'stat -c "%n %i %Y" /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf; ls /etc/haproxy /etc/keepalived')).stdout,
        workers: await haproxyWorkers(h),
      });
    }
    const { result: r, seen } = await sampleVip(() => runCli(deployArgs(lab.inventoryPath)));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual([...seen], ['master1']);
    for (const hr of r.json.hosts) assert.equal(hr.changed, 0, `${hr.host} reported changed=${hr.changed}`);
    for (const h of names) {
      const b = before.get(h)!;
      assert.deepEqual(await unitInfo(h, 'keepalived'), b.ka, `keepalived on ${h} was restarted`);
      assert.deepEqual(await unitInfo(h, 'haproxy'), b.ha, `haproxy on ${h} was restarted`);
      assert.equal(
        (await hostExec(h, 'stat -c "%n %i %Y" /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf; ls /etc/haproxy /etc/keepalived')).stdout,
        b.files,
        `a file changed on ${h}`,
      );
      assert.equal(await haproxyWorkers(h), b.workers, `haproxy reloaded on ${h}`);
    }
  });

  it('one inventory change (haproxy_balance=leastconn): only haproxy.cfg changes, haproxy reloads in place, the VIP never leaves the primary', async () => {
    const inv = labInventory(['haproxy_balance=leastconn']);
    const before = new Map<string, { ha: any; kaConf: string; kaPid: number; workers: string }>();
    for (const h of names) {
      before.set(h, {
        ha: await unitInfo(h, 'haproxy'),
        kaConf: await sha(h, '/etc/keepalived/keepalived.conf'),
        kaPid: (await unitInfo(h, 'keepalived')).mainPid,
        workers: await haproxyWorkers(h),
      });
    }
    const { result: r, seen } = await sampleVip(() => runCli(deployArgs(inv)));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual([...seen], ['master1'], 'the VIP left the primary during the change');
    for (const h of names) {
      const b = before.get(h)!;
      assert.match((await hostExec(h, 'cat /etc/haproxy/haproxy.cfg')).stdout, /^\s*balance leastconn$/m);
      assert.equal(await sha(h, '/etc/keepalived/keepalived.conf'), b.kaConf, `keepalived.conf changed on ${h}`);
      assert.equal((await unitInfo(h, 'keepalived')).mainPid, b.kaPid, `keepalived restarted on ${h}`);
      const ha = await unitInfo(h, 'haproxy');
      assert.equal(ha.mainPid, b.ha.mainPid, `haproxy was restarted on ${h} (MainPID changed)`);
      assert.equal(ha.execMainStartTimestamp, b.ha.execMainStartTimestamp);
      assert.notEqual(await haproxyWorkers(h), b.workers, `haproxy on ${h} was not reloaded (same worker)`);
      const backups = await hostExec(h, 'ls /etc/haproxy | grep -c kha-backup');
      assert.ok(Number(backups.stdout.trim()) >= 1, 'the previous haproxy.cfg is kept as a backup');
    }
    // Converge back to the lab inventory for the next tests.
    const back = await runCli(deployArgs(lab.inventoryPath));
    assert.equal(back.code, 0, describeRun(back));
  });

  it('is really HA: stopping keepalived on the primary moves the VIP to the next priority, and back', async () => {
    await stopUnit('master1', 'keepalived');
    try {
      const deadline = Date.now() + 15_000;
      let holders: string[] = [];
      while (Date.now() < deadline) {
        holders = await vipHolders();
        if (holders.length === 1 && holders[0] === 'master2') break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.deepEqual(holders, ['master2']);
      const k = await hostExec('master3', `kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://${lab.vip}:8443 version`);
      assert.match(k.stdout, /Server Version/);
    } finally {
      await startUnit('master1', 'keepalived');
    }
    const deadline = Date.now() + 20_000;
    let holders: string[] = [];
    while (Date.now() < deadline) {
      holders = await vipHolders();
      if (holders.join() === 'master1') break;
      await new Promise((r) => setTimeout(r, 250));
    }
    assert.deepEqual(holders, ['master1']);
  });
});
