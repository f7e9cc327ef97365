// RPM-family masters for real: hosts with dnf + rpm and no apt (lab/image-rpm), installing the
// keepalived, haproxy and curl RPMs the lab builds from Debian's binaries with EL's packaging (no
// /run/haproxy, no tmpfiles entry for it) from the lab's repository (kha-lab-rpmrepo). A mixed lab
// (master3 RPM-family, master1 and master2 Debian), then an all-RPM lab with one yum-only master.
// Asserts on what the hosts show. Leaves the lab in its default shape (all Debian, fresh).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs as baseArgs } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, resetHosts, restartHost, startRpmRepo, stopRpmRepo, unitInfo, vipHolders } from '../helpers/lab.js';

const names = lab.hosts.map((h) => h.name);
const deployArgs = (...extra: string[]) => baseArgs(lab.inventoryPath, '--output', 'json', ...extra);

async function sh(host: string, script: string): Promise<string> {
  const r = await hostExec(host, script);
  assert.equal(r.code, 0, `${host}: ${script}\n${r.stdout}${r.stderr}`);
  return r.stdout.trim();
}

/** What a deploy may change on a host: files, directories, units, packages (dnf's own cache and logs left out). */
async function footprint(host: string): Promise<string> {
  return sh(
    host,
    [
      'rpm -qa --qf "%{NAME}\\n" 2>/dev/null | sort | tr "\\n" " "; echo',
      'for p in /etc/haproxy /etc/keepalived /etc/tmpfiles.d/kha-deploy-haproxy.conf /run/haproxy /var/lib/kha-deploy /usr/sbin/haproxy /usr/sbin/keepalived /usr/bin/curl; do [ -e "$p" ] && echo "present $p" || echo "absent $p"; done',
      'systemctl show -p LoadState,ActiveState haproxy.service keepalived.service | tr "\\n" " "; echo',
      'find /etc /usr /var/lib -xdev -newer /run/kha-rpm-test.mark ! -path "/var/lib/dnf*" ! -path "/var/lib/rpm*" ! -path "/var/cache/*" ! -path "/var/log/*" 2>/dev/null | sort',
    ].join('\n'),
  );
}

/** haproxy's worker PIDs: children of the master process; a reload replaces them. */
async function haproxyWorkers(host: string): Promise<string> {
  return (await hostExec(host, 'pgrep -P "$(systemctl show -p MainPID --value haproxy)" | sort | tr "\\n" " "')).stdout;
}

async function waitVip(holder: string, timeoutMs = 20_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let holders: string[] = [];
  while (Date.now() < deadline) {
    holders = await vipHolders();
    if (holders.join() === holder) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  return holders;
}

/** The converged state every master must show: packages from its own manager, rundir, units, kubectl through the VIP. */
async function assertConverged(rpmHosts: readonly string[]): Promise<void> {
  assert.deepEqual(await waitVip('master1'), ['master1']);
  for (const h of names) {
    for (const unit of ['keepalived', 'haproxy']) {
      const u = await unitInfo(h, unit);
      assert.deepEqual([u.activeState, u.unitFileState], ['active', 'enabled'], `${unit} on ${h}`);
    }
    const k = await hostExec(h, `kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://${lab.vip}:8443 version`);
    assert.match(k.stdout, /Server Version/, `kubectl via the VIP on ${h}: ${k.stdout}${k.stderr}`);
    if (rpmHosts.includes(h)) {
      assert.match(await sh(h, 'rpm -q keepalived haproxy curl'), /^keepalived-2[^\n]*khalab\.x86_64\nhaproxy-2[^\n]*khalab\.x86_64\ncurl-[^\n]*khalab\.x86_64$/);
      // EL's packaging: the units under /usr/lib/systemd/system, nothing of the package's own for /run/haproxy;
      // the directory is there because kha-deploy made it, and its tmpfiles.d entry is kha-deploy's.
      // (systemd may name the path through Debian's /lib -> usr/lib link: compare the real paths.)
      assert.equal(
        await sh(h, 'for u in haproxy keepalived; do readlink -f "$(systemctl show -p FragmentPath --value $u)"; rpm -qf "$(readlink -f "$(systemctl show -p FragmentPath --value $u)")"; done | tr "\\n" " "'),
        `/usr/lib/systemd/system/haproxy.service ${await sh(h, 'rpm -q haproxy')} /usr/lib/systemd/system/keepalived.service ${await sh(h, 'rpm -q keepalived')}`,
      );
      assert.equal(await sh(h, 'rpm -qf /run/haproxy 2>&1 || true'), 'file /run/haproxy is not owned by any package');
      assert.equal(await sh(h, 'grep -rls /run/haproxy /usr/lib/tmpfiles.d /etc/tmpfiles.d | tr "\\n" " "'), '/etc/tmpfiles.d/kha-deploy-haproxy.conf');
      assert.equal(await sh(h, 'test -d /run/haproxy && echo dir'), 'dir');
    }
  }
}

/** Remote commands per master in a `-v` text run (each is printed once as `[host] $ …`). */
function commandsPerHost(output: string): Record<string, number> {
  const n: Record<string, number> = {};
  for (const m of output.matchAll(/^\[(master\d)\] \$ /gm)) n[m[1]!] = (n[m[1]!] ?? 0) + 1;
  return n;
}

describe('RPM-family masters: mixed lab (master3 dnf + rpm, master1/master2 Debian)', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await resetHosts(undefined, { rpm: ['master3'] });
  });
  after(async () => {
    await startRpmRepo().catch(() => {});
  });

  it('master3 is RPM-family: dnf, yum and rpm, no apt-get/apt/dpkg in the PATH, os-release like RHEL, none of the packages', async () => {
    assert.equal(await sh('master3', 'command -v dnf yum rpm | tr "\\n" " "'), '/usr/bin/dnf /usr/bin/yum /usr/bin/rpm');
    assert.equal((await hostExec('master3', 'command -v apt-get apt dpkg')).stdout, '');
    // What kha-deploy runs through: sudo's secure_path.
    assert.equal((await hostExec('master3', 'command -v apt-get apt dpkg', { user: lab.users.sudo })).stdout, '');
    assert.equal((await hostExec('master3', 'sudo -n sh -c "command -v apt-get apt dpkg"', { user: lab.users.sudo })).stdout, '');
    assert.match(await sh('master3', 'cat /etc/os-release'), /^ID_LIKE="rhel centos fedora"$/m);
    assert.equal(await sh('master3', 'rpm -qa'), 'kha-lab-release-9-1.khalab.noarch');
    for (const h of ['master1', 'master2']) assert.equal(await sh(h, 'command -v apt-get'), '/usr/bin/apt-get');
  });

  it('kha-deploy check plans dnf on master3 and apt-get on the Debian masters', async () => {
    const r = await runCli(['check', ...deployArgs()]);
    assert.equal(r.code, 3, describeRun(r));
    const pk = Object.fromEntries(r.json.hosts.map((h: { host: string; packages: string[] }) => [h.host, h.packages]));
    assert.deepEqual(pk, {
      master1: ['install keepalived, haproxy and curl with apt-get'],
      master2: ['install keepalived, haproxy and curl with apt-get'],
      master3: ['install keepalived, haproxy and curl with dnf'],
    });
  });

  it('repository unreachable: dnf fails, its own lines are in the report, and nothing else changed on master3', async (t) => {
    await sh('master3', 'touch /run/kha-rpm-test.mark; sleep 1');
    const before = await footprint('master3');
    assert.match(before, /^kha-lab-release $/m);
    await stopRpmRepo();
    let r;
    try {
      r = await runCli(deployArgs());
    } finally {
      await startRpmRepo();
    }
    assert.notEqual(r.code, 0, describeRun(r));
    const report = `${r.json?.error ?? ''}\n${r.stderr}`;
    t.diagnostic(`exit ${r.code}; the error as reported:\n${r.json?.error ?? r.stderr}`);
    // dnf's own words (librepo/curl), as the host printed them.
    assert.match(report, /Failed to download metadata for repo 'kha-lab'/, describeRun(r));
    assert.match(report, /Curl error \(7\): Couldn't connect to server|No route to host|Couldn't connect/, describeRun(r));
    assert.match(report, /package installation failed: no configuration was changed/, describeRun(r));
    // Nothing on master3 but what dnf itself keeps (cache, logs, history).
    assert.equal(await footprint('master3'), before);
    const m3 = r.json.hosts.find((h: { host: string }) => h.host === 'master3');
    assert.ok(m3.failed >= 1, JSON.stringify(m3));
    // The rollout never started: no master got a config or kha-deploy's tmpfiles entry, nobody holds the VIP.
    for (const h of names) {
      assert.equal(await sh(h, 'ls /etc/keepalived/keepalived.conf /etc/tmpfiles.d/kha-deploy-haproxy.conf 2>/dev/null | wc -l'), '0', h);
    }
    assert.deepEqual(await vipHolders(), []);
  });

  it('first deploy converges: dnf installs the RPMs on master3, kha-deploy creates /run/haproxy and its tmpfiles entry there', async () => {
    const r = await runCli(deployArgs());
    assert.equal(r.code, 0, describeRun(r));
    await assertConverged(['master3']);
    // The packages' default configs (keepalived's sample VRRP instance, haproxy's example) were replaced, and kept aside.
    const kept = await sh('master3', 'ls /etc/keepalived /etc/haproxy');
    assert.match(kept, /^keepalived\.conf\.kha-backup-/m);
    assert.match(kept, /^haproxy\.cfg\.kha-backup-/m);
    assert.match(await sh('master3', 'grep -l 192.168.200.16 /etc/keepalived/* || true'), /keepalived\.conf\.kha-/);
    assert.doesNotMatch(await sh('master3', 'cat /etc/keepalived/keepalived.conf'), /192\.168\.200\.16/);
  });

  it('rerun: exit 0, changed=0 everywhere, no file written, no reload, 2 remote commands per master', async () => {
    const snap = async () =>
      Promise.all(
        names.map(async (h) => [
          await sh(h, 'stat -c "%n %i %Y" /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf /etc/tmpfiles.d/kha-deploy-haproxy.conf; ls /etc/haproxy /etc/keepalived'),
          await haproxyWorkers(h),
          (await unitInfo(h, 'keepalived')).execMainStartTimestamp,
        ]),
      );
    const before = await snap();
    const r = await runCli(deployArgs());
    assert.equal(r.code, 0, describeRun(r));
    for (const hr of r.json.hosts) assert.equal(hr.changed, 0, `${hr.host} reported changed=${hr.changed}`);
    assert.deepEqual(await snap(), before);
    const v = await runCli(baseArgs(lab.inventoryPath, '--output', 'text', '-v'));
    assert.equal(v.code, 0, describeRun(v));
    assert.deepEqual(commandsPerHost(v.stdout), { master1: 2, master2: 2, master3: 2 }, v.stdout);
  });

  it('/run/haproxy comes back after master3 restarts (docker restart): haproxy active, the VIP back on master1', async () => {
    await restartHost('master3');
    assert.equal(await sh('master3', 'test -d /run/haproxy && stat -c "%U %a" /run/haproxy'), 'root 755');
    const u = await unitInfo('master3', 'haproxy');
    assert.equal(u.activeState, 'active');
    await assertConverged(['master3']);
    const r = await runCli(deployArgs());
    assert.equal(r.code, 0, describeRun(r));
    for (const hr of r.json.hosts) assert.equal(hr.changed, 0, `${hr.host} reported changed=${hr.changed} after the restart`);
  });
});

describe('RPM-family masters: all three, master2 yum-only (as CentOS 7 in the manual procedure)', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await resetHosts(undefined, { rpm: names });
    // No dnf in the PATH: kha-deploy must fall back to yum (here dnf's alias, the same program).
    await sh('master2', 'rm /usr/bin/dnf && command -v yum');
  });
  after(async () => {
    // The default lab: three Debian masters, fresh; the RPM repository removed.
    await resetHosts();
  });

  it('check plans dnf on master1 and master3, yum on master2', async () => {
    const r = await runCli(['check', ...deployArgs()]);
    assert.equal(r.code, 3, describeRun(r));
    const pk = Object.fromEntries(r.json.hosts.map((h: { host: string; packages: string[] }) => [h.host, h.packages]));
    assert.deepEqual(pk, {
      master1: ['install keepalived, haproxy and curl with dnf'],
      master2: ['install keepalived, haproxy and curl with yum'],
      master3: ['install keepalived, haproxy and curl with dnf'],
    });
  });

  it('first deploy converges on three RPM-family masters; the rerun changes nothing', async () => {
    const r = await runCli(deployArgs());
    assert.equal(r.code, 0, describeRun(r));
    await assertConverged(names);
    const again = await runCli(deployArgs());
    assert.equal(again.code, 0, describeRun(again));
    for (const hr of again.json.hosts) assert.equal(hr.changed, 0, `${hr.host} reported changed=${hr.changed}`);
  });

  it('SELinux enforcing and firewalld running (stand-ins on master3) are warned about with the commands to run; nothing changes', async () => {
    // The lab has neither: a getenforce that says Enforcing, and a firewalld.service that only runs.
    await sh(
      'master3',
      [
        'printf "#!/bin/sh\\necho Enforcing\\n" >/usr/local/sbin/getenforce && chmod 0755 /usr/local/sbin/getenforce',
        'printf "[Service]\\nExecStart=/bin/sleep infinity\\n" >/etc/systemd/system/firewalld.service',
        'systemctl daemon-reload && systemctl start firewalld.service',
      ].join('\n'),
    );
    try {
      const r = await runCli(deployArgs());
      assert.equal(r.code, 0, describeRun(r));
      for (const hr of r.json.hosts) assert.equal(hr.changed, 0, `${hr.host} reported changed=${hr.changed}`);
      const w = r.json.warnings.filter((x: { host?: string }) => x.host === 'master3').map((x: { message: string }) => x.message);
      assert.equal(w.length, 2, JSON.stringify(r.json.warnings));
      assert.match(w[0], /^SELinux is enforcing on master3: .* run on master3: setsebool -P haproxy_connect_any 1$/);
      assert.match(w[1], /^firewalld runs on master3: .* run on master3: firewall-cmd --permanent --add-rich-rule='rule protocol value="vrrp" accept' && firewall-cmd --permanent --add-port=8443\/tcp && firewall-cmd --reload$/);
      assert.deepEqual(r.json.warnings.filter((x: { host?: string }) => x.host === 'master1' || x.host === 'master2'), []);
    } finally {
      await sh('master3', 'systemctl stop firewalld.service; rm -f /etc/systemd/system/firewalld.service /usr/local/sbin/getenforce; systemctl daemon-reload');
    }
  });

  it('every master restarted (one at a time): /run/haproxy back on each, haproxy active, the VIP on master1', async () => {
    for (const h of names) {
      await restartHost(h);
      assert.equal(await sh(h, 'test -d /run/haproxy && echo dir'), 'dir', h);
    }
    await assertConverged(names);
  });
});
