// Faults on the lab: every case asserts on what the hosts show afterwards, and that a rerun converges.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { describeRun, runCli, startCli } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { disconnectHost, hostExec, lab, reconnectHost, requireLab, resetHosts, unitInfo, vipHolders } from '../helpers/lab.js';

const names = lab.hosts.map((h) => h.name);
const hostExecOk = async (host: string, script: string) => {
  const r = await hostExec(host, script);
  assert.equal(r.code, 0, `on ${host}: ${script}\n${r.stdout}${r.stderr}`);
  return r;
};
const converge = async () => {
  const r = await runCli(deployArgs(lab.inventoryPath));
  assert.equal(r.code, 0, `rerun did not converge: ${describeRun(r)}`);
  assert.deepEqual(await vipHolders(), ['master1']);
};
const balanceOf = async (h: string) => /^\s*balance (\S+)/m.exec((await hostExec(h, 'cat /etc/haproxy/haproxy.cfg')).stdout)?.[1];
const noTempFiles = async () => {
  for (const h of names) {
    const r = await hostExec(h, 'ls -a /etc/haproxy /etc/keepalived /etc/tmpfiles.d 2>/dev/null | grep kha-tmp || true');
    assert.equal(r.stdout.trim(), '', `half-written file on ${h}`);
  }
};

describe('faults', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await resetHosts();
  });

  it('a master unreachable at start: the rollout refuses to start, names it, touches no host', async () => {
    await disconnectHost('master3');
    try {
      const r = await runCli(deployArgs(lab.inventoryPath));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master3\] connect:/);
      assert.match(r.stderr, /no host was changed/);
      for (const h of ['master1', 'master2']) {
        const pk = await hostExec(h, 'command -v keepalived haproxy; ls /etc/keepalived 2>/dev/null');
        assert.equal(pk.stdout.trim(), '', `${h} was touched`);
      }
    } finally {
      await reconnectHost('master3');
    }
  });

  it('package installation fails: the package manager\'s lines are shown, nothing else changed on that host; a rerun converges', async () => {
    await hostExecOk('master2', `printf 'Acquire::http::Proxy "http://127.0.0.1:9/";\\n' > /etc/apt/apt.conf.d/99zz-kha-broken`);
    try {
      const r = await runCli(deployArgs(lab.inventoryPath));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master2\] packages:/);
      assert.match(r.stderr, /127\.0\.0\.1.*9|Could not connect|Failed to fetch|Unable to (connect|fetch|locate)/);
      const m2 = await hostExec('master2', 'command -v keepalived haproxy; ls /etc/keepalived /etc/tmpfiles.d/kha-deploy-haproxy.conf /usr/sbin/policy-rc.d 2>/dev/null');
      assert.equal(m2.stdout.trim(), '', 'master2 changed beyond the failed install');
      const m1 = await hostExec('master1', 'ls /etc/keepalived/keepalived.conf 2>/dev/null');
      assert.equal(m1.stdout.trim(), '', 'the rollout went on to configure master1 after a failed install');
    } finally {
      await hostExecOk('master2', 'rm -f /etc/apt/apt.conf.d/99zz-kha-broken');
    }
    await converge();
  });

  it('a config that fails validation on the host: the old file stays, the service is untouched, the validator speaks', async () => {
    // On the running cluster the order is master2 → master3 → master1 (the VIP holder last): break the second.
    // haproxy -c refuses a config whose `user haproxy` does not exist on the host.
    await hostExecOk('master3', "sed -i 's/^haproxy:/haproxy-hidden:/' /etc/passwd");
    const pid = (await unitInfo('master3', 'haproxy')).mainPid;
    try {
      const r = await runCli(deployArgs(labInventory(['haproxy_balance=leastconn'])));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master3\] haproxy-config: .*failed validation/);
      assert.match(r.stderr, /haproxy/i);
      assert.equal(await balanceOf('master2'), 'leastconn');
      assert.equal(await balanceOf('master3'), 'roundrobin');
      assert.equal(await balanceOf('master1'), 'roundrobin', 'the VIP holder master1 was touched after master3 failed');
      assert.equal((await unitInfo('master3', 'haproxy')).mainPid, pid);
      assert.deepEqual(await vipHolders(), ['master1']);
      await noTempFiles();
    } finally {
      await hostExecOk('master3', "sed -i 's/^haproxy-hidden:/haproxy:/' /etc/passwd");
    }
    await converge();
  });

  it('a service that does not come up after a reload: the previous config is restored and the service restarted with it', async () => {
    // Something else owns :9443 on master2 only, so haproxy there cannot bind the new vip_port.
    await hostExecOk('master2', 'systemd-run --unit kha-port-blocker python3 -m http.server 9443 --bind 0.0.0.0 >/dev/null 2>&1');
    try {
      const r = await runCli(deployArgs(labInventory(['vip_port=9443'])));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master2\] units: haproxy did not come up after reload; the previous config was restored/);
      assert.match((await hostExec('master2', 'cat /etc/haproxy/haproxy.cfg')).stdout, /bind :8443/);
      const ha = await unitInfo('master2', 'haproxy');
      assert.equal(ha.activeState, 'active');
      const listen = await hostExec('master2', 'ss -ltn | grep -c ":8443 " || true');
      assert.equal(listen.stdout.trim(), '1', 'haproxy on master2 does not serve the restored config');
      assert.match((await hostExec('master3', 'cat /etc/haproxy/haproxy.cfg')).stdout, /bind :8443/);
      assert.deepEqual(await vipHolders(), ['master1']);
    } finally {
      await hostExec('master2', 'systemctl stop kha-port-blocker');
    }
    await converge();
  });

  it('the VIP never reaches the primary (a foreign VRRP router owns it): stop before any backup is touched, and say why', async () => {
    // master3 plays a foreign VRRP router on our VRID with our VIP and the highest priority.
    await hostExecOk(
      'master3',
      `cp /etc/keepalived/keepalived.conf /root/keepalived.conf.kha; cat > /etc/keepalived/keepalived.conf <<'EOF2'
vrrp_instance FOREIGN {
    state MASTER
    priority 254
    interface eth0
    virtual_router_id 51
    advert_int 1
    virtual_ipaddress {
        ${lab.vip}/32 dev eth0
    }
}
EOF2
systemctl restart keepalived`,
    );
    try {
      const deadline = Date.now() + 15_000;
      while ((await vipHolders()).join() !== 'master3' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
      assert.deepEqual(await vipHolders(), ['master3'], 'the foreign router did not take the VIP');
      // No stale neighbour entry may answer for kha-deploy: it has to find the owner itself.
      for (const h of ['master1', 'master2']) await hostExecOk(h, `ip neigh flush to ${lab.vip}`);
      const r = await runCli(deployArgs(labInventory(['haproxy_balance=leastconn']), '--limit', 'master1,master2', '--gate-timeout', '10'));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master1\] vip-on-primary: the VIP 172\.16\.86\.100 is on no master/);
      const mac = (await hostExec('master3', 'cat /sys/class/net/eth0/address')).stdout.trim();
      assert.ok(r.stderr.includes(`another machine answers for 172.16.86.100 (MAC ${mac})`), r.stderr);
      assert.equal(await balanceOf('master2'), 'roundrobin', 'a backup was touched after the primary gate failed');
    } finally {
      await hostExecOk('master3', 'cp /root/keepalived.conf.kha /etc/keepalived/keepalived.conf; systemctl restart keepalived');
    }
    await converge();
  });

  it('the VIP on two hosts at once (split brain): loud error, non-zero exit, the recap and JSON show every holder', async () => {
    await hostExecOk('master3', `ip addr add ${lab.vip}/32 dev eth0`);
    try {
      const r = await runCli(deployArgs(lab.inventoryPath, '--gate-timeout', '4'));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /SPLIT BRAIN: the VIP 172\.16\.86\.100 is on 2 hosts at once \(master1, master3\)/);
      // The final check failed on both holders: the recap marks them, and the VIP line shows both.
      assert.match(r.stdout, /master1\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=1/);
      assert.match(r.stdout, /master2\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=0/);
      assert.match(r.stdout, /master3\s+ok=\d+\s+changed=0\s+unreachable=0\s+failed=1/);
      assert.match(r.stdout, /VIP 172\.16\.86\.100: SPLIT BRAIN, on 2 masters at once: master1, master3 \(last seen at final-check/);
      const j = await runCli(deployArgs(lab.inventoryPath, '--gate-timeout', '4', '--output', 'json'));
      assert.equal(j.code, 1, describeRun(j));
      assert.deepEqual(j.json?.vipHolders, ['master1', 'master3'], j.stdout);
      assert.deepEqual(
        j.json.hosts.map((h: { host: string; failed: number; unreachable: number }) => [h.host, h.failed, h.unreachable]),
        [['master1', 1, 0], ['master2', 0, 0], ['master3', 1, 0]],
      );
      assert.equal(j.json.gates.at(-1).gate, 'final-check');
      assert.equal(j.json.gates.at(-1).ok, false);
    } finally {
      await hostExec('master3', `ip addr del ${lab.vip}/32 dev eth0`);
    }
  });

  it('two runs at once: the second refuses; a run killed mid-way leaves no lock behind', async () => {
    const first = startCli(deployArgs(labInventory(['haproxy_balance=leastconn'])));
    await first.waitFor(/== rolling out/);
    // Freeze the first run while it holds its locks, so the race cannot end before the second starts.
    first.child.kill('SIGSTOP');
    const second = await runCli(deployArgs(lab.inventoryPath)).finally(() => first.child.kill('SIGCONT'));
    assert.equal(second.code, 1, describeRun(second));
    assert.match(second.stderr, /another kha-deploy run/);
    assert.match(second.stderr, /kha-deploy pid \d+/);
    const r1 = await first.done;
    assert.equal(r1.code, 0, describeRun(r1));

    const killed = startCli(deployArgs(lab.inventoryPath));
    await killed.waitFor(/== rolling out/);
    killed.child.kill('SIGKILL');
    await killed.done;
    await noTempFiles();
    await converge();
  });

  it('Ctrl-C mid-rollout: exit 130, no half-written file anywhere, a rerun converges', async () => {
    const run = startCli(deployArgs(labInventory(['haproxy_balance=leastconn'])));
    await run.waitFor(/\[master2\] write \/etc\/haproxy\/haproxy\.cfg: changed/);
    run.child.kill('SIGINT');
    const r = await run.done;
    assert.equal(r.code, 130, describeRun(r));
    assert.match(r.stderr, /interrupted/);
    await noTempFiles();
    await converge();
  });

  it('a backup cut off the network mid-rollout: that step fails clearly, the VIP holder keeps the VIP and is not touched; after repair a rerun converges', async () => {
    // Order on the running cluster: master2 → master3 → master1. Cut master3 once master2 is done.
    const run = startCli(deployArgs(labInventory(['haproxy_balance=leastconn'])));
    await run.waitFor(/-- master3 \(backup\)/);
    await disconnectHost('master3');
    try {
      const r = await run.done;
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /error: \[master3\] [\w-]+: connection to kha@172\.16\.86\.13:22 was lost/);
      assert.match(r.stdout, /master3\s+ok=\d+\s+changed=\d+\s+unreachable=1\s+failed=0/);
      assert.match(r.stdout, /master2\s+ok=\d+\s+changed=[1-9]\d*\s+unreachable=0\s+failed=0/);
      assert.match(r.stdout, /master1\s+ok=0\s+changed=0\s+unreachable=0\s+failed=0/);
      assert.equal(await balanceOf('master1'), 'roundrobin', 'the VIP holder was touched after master3 was cut off');
      assert.deepEqual(await vipHolders(), ['master1']);
      // haproxy's connect timeout + redispatch sends requests past the dead backend.
      for (let i = 0; i < 3; i++) {
        const k = await hostExec('master2', `kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://${lab.vip}:8443 --request-timeout=8s version`);
        assert.match(k.stdout, /Server Version/, `kubectl through the VIP failed with master3 cut off: ${k.stdout}${k.stderr}`);
      }
    } finally {
      await reconnectHost('master3');
    }
    await converge();
  });

  it('the apiserver certificate lacks the VIP: kubectl through the VIP fails with an x509 error, and kha-deploy says how to fix it', async () => {
    await resetHosts(undefined, { vipInCert: false });
    try {
      // The default gate deadline (90 s): the same x509 answer three times in a row must end the wait long before.
      const started = Date.now();
      const r = await runCli(deployArgs(lab.inventoryPath));
      assert.equal(r.code, 1, describeRun(r));
      assert.ok(Date.now() - started < 60_000, `took ${Date.now() - started} ms: the x509 answer was not taken as final`);
      assert.match(r.stderr, /\(the same answer 3 times in a row, after \d+s\)/);
      assert.match(r.stderr, /does not list the VIP 172\.16\.86\.100 in its subjectAltNames/);
      assert.match(r.stderr, /apiServer\.certSANs/);
      assert.match(r.stderr, /x509/);
    } finally {
      await resetHosts();
    }
  });
});
