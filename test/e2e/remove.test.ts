// kha-deploy remove on the lab, asserting on what the hosts show: fresh hosts get Debian's own
// keepalived and haproxy first (so /etc/haproxy/haproxy.cfg is the distribution's file) and master2
// an operator's keepalived.conf; after deploy + remove every original is back byte for byte (with
// its mode and owner), the units are inactive and disabled, nothing of kha-deploy is left, and the
// VIP — traced from the kernel's address events — left master1 only after keepalived had stopped on
// master3 and master2, and never went anywhere else. A second remove changes nothing; --purge
// removes the packages (not curl); a deploy afterwards converges and leaves the lab as other files expect.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli, type CliResult } from '../helpers/cli.js';
import { traceVip, type VipTrace } from '../helpers/failover.js';
import { deployArgs } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, resetHosts, unitInfo, vipHolders } from '../helpers/lab.js';

const names = lab.hosts.map((h) => h.name);
const FILES = ['/etc/haproxy/haproxy.cfg', '/etc/keepalived/keepalived.conf', '/etc/tmpfiles.d/kha-deploy-haproxy.conf'];
const OPERATOR_KEEPALIVED = "! master2's own keepalived.conf, from before kha-deploy\nglobal_defs {\n    router_id operator_master2\n}\n";

/** `kha-deploy remove ARGS` through the CLI. */
function removeCli(args: string[]): Promise<CliResult> {
  return runCli(['remove', ...args]);
}

/** sha256, mode and owner of each managed file ('-' when absent). */
async function fileState(host: string): Promise<string> {
  const r = await hostExec(host, `for f in ${FILES.join(' ')}; do if [ -e "$f" ]; then echo "$f $(sha256sum < "$f" | cut -d' ' -f1) $(stat -c '%a %U:%G' "$f")"; else echo "$f -"; fi; done`);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

/** Everything kha-deploy leaves on a host: records, backups, temp files, the tmpfiles entry, the state directory. */
async function leftovers(host: string): Promise<string> {
  const r = await hostExec(host, "ls -1a /etc/haproxy /etc/keepalived /etc/tmpfiles.d 2>/dev/null | grep -e kha || true; ls -d /var/lib/kha-deploy 2>/dev/null || true");
  return r.stdout.trim();
}

/**
 * When systemd logged that keepalived had stopped, last, in ms of CLOCK_MONOTONIC (journald's
 * __MONOTONIC_TIMESTAMP: the clock traceVip reads). systemctl show's timestamps are no use here: a
 * stopped and disabled unit is unloaded, and its timestamps read 0.
 */
async function keepalivedStoppedAtMs(host: string): Promise<number> {
  const r = await hostExec(host, 'journalctl -u keepalived.service -o json --output-fields=MESSAGE --no-pager');
  const stops = r.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as { MESSAGE?: unknown; __MONOTONIC_TIMESTAMP: string })
    .filter((e) => typeof e.MESSAGE === 'string' && /^Stopped (keepalived\.service|Keepalive Daemon)/.test(e.MESSAGE));
  assert.ok(stops.length > 0, `no 'Stopped keepalived.service' in ${host}'s journal:\n${r.stdout}${r.stderr}`);
  return Number(stops.at(-1)!.__MONOTONIC_TIMESTAMP) / 1000;
}

const sumChanged = (json: { recap: { changed: number }[] }) => json.recap.reduce((n, h) => n + h.changed, 0);

describe('remove on the lab', { concurrency: false }, () => {
  const originals = new Map<string, string>();

  before(async () => {
    await requireLab();
    await resetHosts();
    // Debian's packages, as an operator's master may already have them: their haproxy.cfg is the original.
    await Promise.all(
      names.map(async (h) => {
        const r = await hostExec(h, 'export DEBIAN_FRONTEND=noninteractive; apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends keepalived haproxy >/dev/null', { timeoutMs: 300_000 });
        assert.equal(r.code, 0, `${h}: ${r.stdout}${r.stderr}`);
      }),
    );
    const w = await hostExec('master2', 'cat > /etc/keepalived/keepalived.conf && chmod 0640 /etc/keepalived/keepalived.conf', { stdin: OPERATOR_KEEPALIVED });
    assert.equal(w.code, 0, w.stderr);
    for (const h of names) originals.set(h, await fileState(h));
    assert.match(originals.get('master1')!, /^\/etc\/haproxy\/haproxy\.cfg [0-9a-f]{64} 644 root:root$/m);
    assert.match(originals.get('master2')!, /^\/etc\/keepalived\/keepalived\.conf [0-9a-f]{64} 640 root:root$/m);
    const d = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(d.code, 0, describeRun(d));
    assert.deepEqual(await vipHolders(), ['master1']);
    for (const h of names) assert.notEqual(await fileState(h), originals.get(h), `${h}: deploy changed the files`);
  });

  after(async () => {
    // Leave the lab converged, as the other e2e files expect it.
    const d = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(d.code, 0, describeRun(d));
  });

  it('remove: backups first, the holder last, the VIP released only at the end; originals back byte for byte; units inactive and disabled; nothing of kha-deploy left', async () => {
    let trace: VipTrace | undefined;
    let r: CliResult;
    let events;
    try {
      trace = await traceVip();
      assert.deepEqual(trace.holders(), ['master1']);
      r = await removeCli(deployArgs(lab.inventoryPath));
    } finally {
      events = (await trace?.stop()) ?? [];
    }
    assert.equal(r.code, 0, describeRun(r));
    assert.match(r.stdout, /^remove .*: VIP 172\.16\.86\.100 is on master1, removed last; order master3 → master2 → master1$/m);
    assert.match(r.stdout, /^\[master1\] {3}- released the VIP 172\.16\.86\.100$/m);
    assert.match(r.stdout, /^\[master2\] {3}- restored \/etc\/keepalived\/keepalived\.conf as it was before kha-deploy's first write$/m);
    assert.match(r.stdout, /^\[master3\] {3}- removed \/etc\/keepalived\/keepalived\.conf \(there was none before kha-deploy\)$/m);
    assert.match(r.stdout, /^VIP 172\.16\.86\.100 released: on no master since master1, the last one, stopped keepalived$/m);
    for (const h of names) assert.match(r.stdout, new RegExp(`^  ${h} +ok=1 +changed=3 +unreachable=0 +failed=0$`, 'm'));

    // The VIP: on master1 from the start until it was dropped there, after keepalived had stopped on
    // master3 and master2; on no other host at any time.
    assert.deepEqual(events.filter((e) => e.host !== 'master1' && e.present), [], JSON.stringify(events));
    const dropped = events.find((e) => e.host === 'master1' && !e.present);
    assert.ok(dropped, `the VIP never left master1: ${JSON.stringify(events)}`);
    const stopped = Object.fromEntries(await Promise.all(names.map(async (h) => [h, await keepalivedStoppedAtMs(h)] as const)));
    assert.ok(stopped.master3! < stopped.master2! && stopped.master2! < stopped.master1!, JSON.stringify(stopped));
    assert.ok(dropped.atMs >= stopped.master2!, `VIP dropped at ${dropped.atMs}, before master2's keepalived stopped at ${stopped.master2}`);
    // keepalived drops the VIP while it shuts down; systemd marks it inactive once it has exited.
    assert.ok(dropped.atMs <= stopped.master1! + 1_000, `VIP dropped at ${dropped.atMs}, well after master1's keepalived stopped at ${stopped.master1}`);
    assert.deepEqual(await vipHolders(), []);

    for (const h of names) {
      for (const u of ['keepalived', 'haproxy']) {
        const i = await unitInfo(h, u);
        assert.deepEqual([i.activeState, i.unitFileState], ['inactive', 'disabled'], `${h} ${u}`);
      }
      assert.equal(await fileState(h), originals.get(h), `${h}: the files from before kha-deploy are back`);
      assert.equal(await leftovers(h), '', `${h}: kha-deploy left files behind`);
      const lock = await hostExec(h, 'flock -n /run/lock/kha-deploy.lock true');
      assert.equal(lock.code, 0, `the run lock is still held on ${h}`);
    }
  });

  it('a second remove changes nothing and exits 0; its JSON is one document', async () => {
    const before = await Promise.all(names.map(fileState));
    const r = await removeCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(r.code, 0, describeRun(r));
    assert.ok(r.json, `stdout is one JSON document:\n${r.stdout}`);
    assert.equal(sumChanged(r.json), 0);
    assert.deepEqual(r.json.hosts.map((h: { result: string }) => h.result), ['nothing to do', 'nothing to do', 'nothing to do']);
    assert.ok(r.json.recap.every((h: { commands: number }) => h.commands === 1), 'one command per master: lock + facts');
    assert.deepEqual(await Promise.all(names.map(fileState)), before);
  });

  it('--purge removes keepalived and haproxy (curl stays); again, it changes nothing', async () => {
    const r = await removeCli(deployArgs(lab.inventoryPath, '--purge', '--output', 'json'));
    assert.equal(r.code, 0, describeRun(r));
    assert.ok(r.json.recap.every((h: { changed: number }) => h.changed === 1), JSON.stringify(r.json.recap));
    for (const h of names) {
      const s = await hostExec(h, 'for p in keepalived haproxy curl; do printf "%s " "$p"; dpkg-query -W -f="\\${db:Status-Status}\\n" "$p" 2>/dev/null || echo gone; done');
      assert.match(s.stdout, /^keepalived (not-installed|gone)$/m, `${h}:\n${s.stdout}`);
      assert.match(s.stdout, /^haproxy (not-installed|gone)$/m, `${h}:\n${s.stdout}`);
      assert.match(s.stdout, /^curl installed$/m, `${h}:\n${s.stdout}`);
      assert.equal((await hostExec(h, 'dpkg -s keepalived haproxy >/dev/null 2>&1')).code === 0, false);
      assert.equal(await leftovers(h), '');
    }
    const again = await removeCli(deployArgs(lab.inventoryPath, '--purge', '--output', 'json'));
    assert.equal(again.code, 0, describeRun(again));
    assert.equal(sumChanged(again.json), 0);
  });

  it('a deploy after the remove converges: VIP on the primary, and a rerun changes nothing', async () => {
    const d = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(d.code, 0, describeRun(d));
    assert.deepEqual(await vipHolders(), ['master1']);
    const again = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(again.code, 0, describeRun(again));
    assert.ok(again.json.hosts.every((h: { changed: number }) => h.changed === 0), JSON.stringify(again.json.hosts));
  });
});
