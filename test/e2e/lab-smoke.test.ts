// The lab itself: three booted masters that look like real ones before kha-deploy runs.
// Asserts on what the hosts show, reached the way kha-deploy reaches them (SSH with the lab key,
// strict host-key checking against the lab's known_hosts).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { hostExec, lab, labSsh, labUp, requireLab, resetHosts, sshConnectionCount, unitInfo, vipHolders } from '../helpers/lab.js';

describe('lab smoke', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await resetHosts(); // fresh hosts: earlier runs may have installed keepalived/haproxy
  });

  for (const h of lab.hosts) {
    it(`${h.name}: SSH as the sudo user; kubectl gets a Server Version from the apiserver at ${h.address}:6443`, async () => {
      const r = await labSsh(
        h.name,
        `hostname; sudo -n kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://${h.address}:6443 version`,
      );
      assert.equal(r.code, 0, `ssh kha@${h.address}: exit ${r.code}\n${r.stdout}${r.stderr}`);
      const [name, ...rest] = r.stdout.split('\n');
      assert.equal(name, h.name);
      assert.match(rest.join('\n'), /Server Version: .*GitVersion:"v1\.\d+\.\d+"/);
    });

    it(`${h.name}: root logs in by key; password logins are refused`, async () => {
      const root = await labSsh(h.name, 'id -un', { user: 'root' });
      assert.equal(root.code, 0, root.stderr);
      assert.equal(root.stdout.trim(), 'root');
      const pw = await labSsh(h.name, 'true', {
        user: lab.users.sudoWithPassword,
        sshArgs: ['-o', 'PubkeyAuthentication=no', '-o', 'PreferredAuthentications=password,keyboard-interactive'],
      });
      assert.equal(pw.code, 255, 'a login without the key must fail');
      assert.match(pw.stderr, /Permission denied \(publickey\)/);
    });

    it(`${h.name}: khapw needs its password for sudo; kha does not`, async () => {
      const noPw = await labSsh(h.name, 'sudo -n true', { user: lab.users.sudoWithPassword });
      assert.notEqual(noPw.code, 0);
      assert.match(noPw.stderr, /password is required/);
      const withPw = await labSsh(h.name, "sudo -S -p '' id -u", { user: lab.users.sudoWithPassword, stdin: `${lab.users.sudoPassword}\n` });
      assert.equal(withPw.code, 0, withPw.stderr);
      assert.equal(withPw.stdout.trim(), '0');
    });

    it(`${h.name}: a master's files and services, no keepalived or haproxy`, async () => {
      const r = await hostExec(
        h.name,
        'stat -c "%U %a" /etc/kubernetes/admin.conf; grep -o "server: .*" /etc/kubernetes/admin.conf; command -v keepalived haproxy; dpkg -l keepalived haproxy 2>/dev/null | grep -c "^ii"; ls /etc/keepalived /etc/haproxy 2>&1 | wc -l',
      );
      const [owner, server, count, listing] = r.stdout.trim().split('\n');
      assert.equal(owner, 'root 600');
      assert.equal(server, `server: https://${lab.vip}:8443`);
      assert.equal(count, '0', `keepalived/haproxy installed on ${h.name}:\n${r.stdout}`);
      assert.equal(listing, '2', 'neither /etc/keepalived nor /etc/haproxy exists');
      for (const unit of ['ssh', 'kube-apiserver']) {
        const u = await unitInfo(h.name, unit);
        assert.equal(u.activeState, 'active', `${unit} on ${h.name}`);
        assert.equal(u.unitFileState, 'enabled', `${unit} on ${h.name}`);
        assert.ok(u.mainPid > 0);
        assert.match(u.activeEnterTimestamp, /^\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC$/);
      }
      const sys = await hostExec(h.name, 'systemctl is-system-running');
      assert.equal(sys.stdout.trim(), 'running');
      assert.equal((await unitInfo(h.name, 'keepalived')).loadState, 'not-found');
    });

    it(`${h.name}: the serving certificate lists the host, 127.0.0.1 and the VIP`, async () => {
      const r = await hostExec(h.name, 'openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/pki/apiserver.crt');
      assert.equal(r.code, 0, r.stderr);
      for (const ip of [h.address, '127.0.0.1', lab.vip]) assert.ok(r.stdout.includes(ip), `${ip} missing from ${r.stdout}`);
    });
  }

  it('known_hosts holds every host by IP, taken from the hosts themselves', async () => {
    const kh = readFileSync(lab.knownHostsPath, 'utf8');
    for (const h of lab.hosts) {
      const own = await hostExec(h.name, 'cat /etc/ssh/ssh_host_ed25519_key.pub');
      const [type, key] = own.stdout.trim().split(' ');
      assert.ok(kh.includes(`${h.address} ${type} ${key}\n`), `${h.name}'s ed25519 key missing from known_hosts`);
    }
    const inv = readFileSync(lab.inventoryPath, 'utf8');
    assert.match(inv, /^master1 ansible_host=172\.16\.86\.11 priority=150$/m);
    assert.match(inv, new RegExp(`^ansible_ssh_private_key_file=${lab.keyPath.replace(/[.]/g, '\\.')}$`, 'm'));
  });

  it('sshd logs each connection (the count moves by one per SSH login)', async () => {
    const before = await sshConnectionCount('master2');
    const r = await labSsh('master2', 'true');
    assert.equal(r.code, 0, r.stderr);
    let after = before;
    for (let i = 0; i < 20 && after === before; i++) {
      await new Promise((res) => setTimeout(res, 100));
      after = await sshConnectionCount('master2');
    }
    assert.equal(after, before + 1);
  });

  it('VRRP multicast (224.0.0.18, IP protocol 112) from one host reaches the others', async () => {
    // What keepalived needs: raw protocol-112 packets to the VRRP group across the lab bridge.
    const recv = [
      'import socket, struct, sys',
      's = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)',
      "s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4s', socket.inet_aton('224.0.0.18'), socket.inet_aton(sys.argv[1])))",
      's.settimeout(6)',
      'try:',
      '    while True:',
      '        data, addr = s.recvfrom(2048)',
      "        if data[20:28] == b'kha-lab!':",
      "            print('from', addr[0]); break",
      'except socket.timeout:',
      "    print('nothing')",
    ].join('\n');
    const send = [
      'import socket, sys, time',
      's = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)',
      's.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)',
      's.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))',
      'for _ in range(8):',
      "    s.sendto(b'kha-lab!', ('224.0.0.18', 0)); time.sleep(0.25)",
    ].join('\n');
    const [m1, m2, m3] = lab.hosts;
    const receivers = [m2!, m3!].map((h) => hostExec(h.name, `python3 - ${h.address}`, { stdin: recv }));
    await new Promise((res) => setTimeout(res, 700));
    const s = await hostExec(m1!.name, `python3 - ${m1!.address}`, { stdin: send });
    assert.equal(s.code, 0, s.stderr);
    for (const r of await Promise.all(receivers)) assert.equal(r.stdout.trim(), `from ${m1!.address}`, r.stderr);
  });

  it('the VIP is held by nobody and nothing answers on it', async () => {
    assert.deepEqual(await vipHolders(), []);
    const r = await hostExec('master1', `timeout 2 bash -c '</dev/tcp/${lab.vip}/8443' 2>&1; echo "rc=$?"`);
    assert.doesNotMatch(r.stdout, /rc=0/, 'a connection to VIP:8443 succeeded before kha-deploy ran');
  });
});

describe('lab: serving certificates without the VIP, on request', { concurrency: false }, () => {
  after(async () => {
    await labUp({ vipInCert: true }); // back to the normal lab for the suites that follow
  });

  it('resetHosts(..., { vipInCert: false }) gives every host a certificate that lacks the VIP', async () => {
    await resetHosts(undefined, { vipInCert: false });
    for (const h of lab.hosts) {
      const r = await hostExec(h.name, 'openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/pki/apiserver.crt');
      assert.ok(r.stdout.includes(h.address), r.stdout);
      assert.ok(!r.stdout.includes(lab.vip), `${h.name}: VIP still in ${r.stdout}`);
      const k = await labSsh(h.name, `sudo -n kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://${h.address}:6443 version`);
      assert.match(k.stdout, /Server Version/, k.stderr);
    }
  });
});
