// Off the happy path, as an operator meets it: Ctrl-C on a real terminal, Ctrl-C during a stuck
// command, a chatty login shell, a run cut off the network (its lock must not outlive it),
// --break-lock, and a dead third-party apt source. Every case asserts on what the hosts show.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { describeRun, runCli, startCli } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { dropConnections, hostExec, lab, requireLab, resetHosts, restoreConnections, unitInfo, vipHolders } from '../helpers/lab.js';
import { startCliInPty } from '../helpers/pty.js';

const names = lab.hosts.map((h) => h.name);
const hostExecOk = async (host: string, script: string) => {
  const r = await hostExec(host, script);
  assert.equal(r.code, 0, `on ${host}: ${script}\n${r.stdout}${r.stderr}`);
  return r;
};
const converge = async () => {
  const r = await runCli(deployArgs(lab.inventoryPath));
  assert.equal(r.code, 0, `did not converge: ${describeRun(r)}`);
  assert.deepEqual(await vipHolders(), ['master1']);
};
const noTempFiles = async () => {
  for (const h of names) {
    const r = await hostExec(h, 'ls -a /etc/haproxy /etc/keepalived /etc/tmpfiles.d 2>/dev/null | grep kha-tmp || true');
    assert.equal(r.stdout.trim(), '', `half-written file on ${h}`);
  }
};
/** mtime (ns) of the managed files and the MainPIDs of both units: what "untouched" means for a host. */
const fingerprint = async (host: string) => {
  const files = (await hostExecOk(host, 'stat -c "%n %Y %i" /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf')).stdout.trim();
  const pids = `${(await unitInfo(host, 'haproxy')).mainPid}/${(await unitInfo(host, 'keepalived')).mainPid}`;
  return `${files}\n${pids}`;
};
const lockHeld = async (host: string) => (await hostExec(host, 'flock -n /run/lock/kha-deploy.lock true')).code !== 0;

describe('off the happy path, as an operator meets it', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await converge();
  });

  it('Ctrl-C on a terminal mid-rollout: exit 130, "stopped before the next step", the recap, no temp file, later masters untouched', async () => {
    // On the running cluster the order is master2 → master3 → master1 (the VIP holder last).
    const before3 = await fingerprint('master3');
    const before1 = await fingerprint('master1');
    const run = startCliInPty(deployArgs(labInventory(['haproxy_balance=leastconn'])));
    // The task tree shows the current step; Ctrl-C once master2's haproxy.cfg was written.
    await run.waitFor(/master2: write \/etc\/haproxy\/haproxy\.cfg: changed/);
    run.type('\x03');
    const r = await run.done;
    assert.equal(r.code, 130, r.screen);
    assert.match(r.screen, /interrupted: stopped before the next step/);
    assert.match(r.screen, /RECAP\n(?:.*\n)*?\s+master2\s+ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0/);
    assert.match(r.screen, /master3\s+ok=0\s+changed=0\s+unreachable=0\s+failed=0/);
    assert.match(r.screen, /master1\s+ok=0\s+changed=0\s+unreachable=0\s+failed=0/);
    assert.match(r.screen, /FAILED after [\d.]+s \(exit 130\)/);
    await noTempFiles();
    assert.equal(await fingerprint('master3'), before3, 'master3 was touched after Ctrl-C');
    assert.equal(await fingerprint('master1'), before1, 'master1 (the VIP holder) was touched after Ctrl-C');
    assert.deepEqual(await vipHolders(), ['master1']);
    for (const h of names) assert.equal(await lockHeld(h), false, `the run lock on ${h} outlived the interrupted run`);
    await converge();
  });

  it('Ctrl-C on a terminal while the VIP holder, changed last, is in a VRRP instance move: exit 130 at once, the tree in the run\'s order, the VIP on master1 only, no copy of it left on lo', async () => {
    const run = startCliInPty(deployArgs(labInventory(['virtual_router_id=52'])));
    // master1 holds the VIP: its copy on lo is in place before its first step (src/vip-hold.ts).
    await run.waitFor(/master1: write \/etc\/haproxy\/haproxy\.cfg/, 60_000);
    const sent = Date.now();
    run.type('\x03');
    const r = await run.done;
    assert.equal(r.code, 130, r.screen);
    assert.ok(r.endedAt - sent <= 5000, `Ctrl-C took ${r.endedAt - sent} ms to return`);
    assert.match(r.screen, /roll out: master2 → master3 → master1/);
    assert.match(r.screen, /interrupted: stopped before the next step/);
    assert.match(r.screen, /FAILED after [\d.]+s \(exit 130\)/);
    assert.deepEqual(await vipHolders(), ['master1']);
    assert.equal((await hostExec('master1', `ip -o addr show dev lo | grep -F ' ${lab.vip}/' || true`)).stdout.trim(), '', 'the copy of the VIP on lo was left behind');
    for (const h of names) assert.equal(await lockHeld(h), false, `the run lock on ${h} outlived the interrupted run`);
    await converge();
  });

  it('Ctrl-C while a remote command is stuck (apt waiting for the dpkg lock): back within 2 s, the command ended on the host', async () => {
    await resetHosts(['master2']);
    // Another package manager holds dpkg's lock (an fcntl lock, as apt takes it): apt-get install waits (DPkg::Lock::Timeout=300).
    await hostExecOk(
      'master2',
      `systemd-run --unit kha-dpkg-holder python3 -c 'import fcntl, time; f = open("/var/lib/dpkg/lock-frontend", "w"); fcntl.lockf(f, fcntl.LOCK_EX); time.sleep(600)' >/dev/null 2>&1`,
    );
    try {
      const run = startCli(deployArgs(lab.inventoryPath));
      await run.waitFor(/installing packages on master2/);
      const deadline = Date.now() + 60_000;
      while ((await hostExec('master2', 'pgrep -f "apt-get install" >/dev/null')).code !== 0) {
        assert.ok(Date.now() < deadline, `apt-get install never started on master2:\n${run.output()}`);
        await new Promise((res) => setTimeout(res, 250));
      }
      await new Promise((res) => setTimeout(res, 1000)); // now it waits on the lock
      const sent = Date.now();
      run.child.kill('SIGINT');
      const r = await run.done;
      const took = Date.now() - sent;
      assert.equal(r.code, 130, describeRun(r));
      assert.ok(took <= 2000, `Ctrl-C took ${took} ms to return`);
      const left = await hostExec('master2', 'pgrep -a -f "apt-get (update|install)" || true; ls /usr/sbin/policy-rc.d 2>/dev/null || true');
      assert.equal(left.stdout.trim(), '', 'apt-get (or our policy-rc.d) was left behind on master2');
    } finally {
      await hostExec('master2', 'systemctl stop kha-dpkg-holder');
    }
    await converge();
  });

  it('a chatty login shell (~/.bashrc prints before and after) does not break facts or gates', async () => {
    // Debian's bash reads ~/.bashrc for SSH commands; lines before its interactive check print for every command.
    await hostExecOk('master2', `cp /home/kha/.bashrc /home/kha/.bashrc.kha; sed -i '1i echo "Welcome to $(hostname)! conda base activated"' /home/kha/.bashrc`);
    try {
      const r = await runCli(deployArgs(labInventory(['haproxy_balance=leastconn']), '-v'));
      assert.equal(r.code, 0, describeRun(r));
      assert.match(r.stdout, /\[master2\] write \/etc\/haproxy\/haproxy\.cfg: changed/);
      assert.match((await hostExec('master2', 'cat /etc/haproxy/haproxy.cfg')).stdout, /balance leastconn/);
    } finally {
      await hostExecOk('master2', 'mv /home/kha/.bashrc.kha /home/kha/.bashrc');
    }
    await converge();
  });

  it('a run cut off the network (packets dropped, no reset) fails; its lock on the host ends after the heartbeat bound, no --break-lock needed', async () => {
    const run = startCli(deployArgs(labInventory(['haproxy_balance=leastconn'])));
    await run.waitFor(/== rolling out/);
    const ports = await dropConnections('master3', run.child.pid!);
    try {
      const r = await run.done;
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master3\] .*connection to kha@172\.16\.86\.13:22 was lost/);
      assert.match(r.stdout, /master3\s+ok=\d+\s+changed=\d+\s+unreachable=1\s+failed=0/);
      // The cut left sshd's side alone: the old holder still has the lock, and says who it is.
      assert.equal(await lockHeld('master3'), true, `the lock is gone already: the cut (ports ${ports.join(',')}) did not leave a holder`);
      const second = await runCli(deployArgs(lab.inventoryPath));
      assert.equal(second.code, 1, describeRun(second));
      assert.match(second.stderr, /\[master3\] lock: another kha-deploy run is working on this master/);
      assert.match(second.stderr, new RegExp(`kha-deploy pid ${run.child.pid}\\b`));
      // Heartbeats stopped with the cut: the holder gives up within its bound (30 s).
      const deadline = Date.now() + 45_000;
      while (await lockHeld('master3')) {
        assert.ok(Date.now() < deadline, 'the run lock on master3 outlived its run by more than 45 s');
        await new Promise((res) => setTimeout(res, 1000));
      }
      await converge();
    } finally {
      await restoreConnections();
    }
  });

  it('--break-lock names who held the lock, ends that holder and takes the lock', async () => {
    const run = startCli(deployArgs(labInventory(['haproxy_balance=leastconn'])));
    await run.waitFor(/== rolling out/);
    await dropConnections('master3', run.child.pid!);
    try {
      const r = await run.done;
      assert.equal(r.code, 1, describeRun(r));
      assert.equal(await lockHeld('master3'), true, 'no stale lock to break');
      const broke = await runCli(deployArgs(lab.inventoryPath, '--break-lock'));
      assert.equal(broke.code, 0, describeRun(broke));
      assert.match(broke.stdout, new RegExp(`warning: \\[master3\\] --break-lock: ended the run lock held by .*kha-deploy pid ${run.child.pid}\\b`));
      assert.match(broke.stdout, /user=kha from=172\.16\.86\.1 since=\S+ owner=kha-deploy pid/);
      assert.deepEqual(await vipHolders(), ['master1']);
    } finally {
      await restoreConnections();
    }
    for (const h of names) assert.equal(await lockHeld(h), false, `lock left on ${h}`);
  });

  it('apt-get update failing on a dead third-party source does not stop the install; a warning names the source', async () => {
    await resetHosts(['master3']);
    // An unused lab address, reached directly (not through the lab's apt proxy): nothing answers there.
    await hostExecOk(
      'master3',
      `echo 'deb http://172.16.86.99/kubernetes-xenial kubernetes-xenial main' > /etc/apt/sources.list.d/kubernetes.list; ` +
        `echo 'Acquire::http::Proxy::172.16.86.99 "DIRECT";' > /etc/apt/apt.conf.d/99kha-dead-source`,
    );
    try {
      const r = await runCli(deployArgs(lab.inventoryPath));
      assert.equal(r.code, 0, describeRun(r));
      assert.match(r.stdout, /warning: \[master3\] .*http:\/\/172\.16\.86\.99\/kubernetes-xenial/);
      const pk = await hostExec('master3', "dpkg-query -W -f '${Package} ${Status}\\n' keepalived haproxy");
      assert.match(pk.stdout, /keepalived install ok installed/);
      assert.match(pk.stdout, /haproxy install ok installed/);
      assert.equal((await unitInfo('master3', 'haproxy')).activeState, 'active');
    } finally {
      await hostExec('master3', 'rm -f /etc/apt/sources.list.d/kubernetes.list /etc/apt/apt.conf.d/99kha-dead-source');
    }
    await converge();
  });
});
