// SSH trust and bad input on the lab: host keys verified, no connection for a bad inventory,
// sudo with and without a password, root login; secrets never in the output.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { labInventory } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, sshConnectionCount, vipHolders } from '../helpers/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'kha-trust-'));
const knownHosts = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const accepted = async (host: string) =>
  Number((await hostExec(host, 'journalctl -u ssh.service --no-pager -o cat | grep -c "^Accepted publickey" || true')).stdout.trim());

describe('trust and input on the lab', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    // A converged cluster makes every run below a fast no-op unless it is refused.
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath]);
    assert.equal(r.code, 0, describeRun(r));
  });

  it('an unknown host key is refused before any command runs, with the SHA256 fingerprint and how to trust it', async () => {
    const before = await accepted('master1');
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', knownHosts('empty', '')]);
    assert.equal(r.code, 1, describeRun(r));
    const fp = (await hostExec('master1', 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d" " -f2')).stdout.trim();
    assert.match(fp, /^SHA256:/);
    assert.ok(r.stderr.includes(fp), `fingerprint ${fp} not shown:\n${r.stderr}`);
    assert.match(r.stderr, /unknown host key for 172\.16\.86\.11/);
    assert.match(r.stderr, /ssh-keyscan|--accept-new-host-keys/);
    assert.equal(await accepted('master1'), before, 'a login happened although the host key was unknown');
    // As Ansible counts it: every master unreachable, nothing failed, the VIP never observed.
    for (const h of ['master1', 'master2', 'master3']) assert.match(r.stdout, new RegExp(`${h}\\s+ok=0\\s+changed=0\\s+unreachable=1\\s+failed=0`));
    assert.match(r.stdout, /VIP 172\.16\.86\.100: not observed/);
    const j = await runCli(['-i', lab.inventoryPath, '--known-hosts', knownHosts('empty2', ''), '--output', 'json']);
    assert.equal(j.code, 1, describeRun(j));
    assert.equal(j.json?.vipHolders, null, j.stdout);
    assert.deepEqual(j.json.hosts.map((h: { unreachable: number; failed: number }) => [h.unreachable, h.failed]), [[1, 0], [1, 0], [1, 0]]);
    assert.match(j.json.error, /unknown host key for 172\.16\.86\.11/);
  });

  it('a changed host key is always refused, loudly, with both fingerprints; --accept-new-host-keys does not change that', async () => {
    const real = readFileSync(lab.knownHostsPath, 'utf8');
    const other = (await hostExec('master1', 'ssh-keygen -q -t ed25519 -N "" -f /tmp/other <<<y >/dev/null; cut -d" " -f1,2 /tmp/other.pub')).stdout.trim();
    const forged = real
      .split('\n')
      .filter((l) => !l.startsWith('172.16.86.11 '))
      .concat(`172.16.86.11 ${other}`)
      .join('\n');
    const file = knownHosts('forged', `${forged}\n`);
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', file, '--accept-new-host-keys']);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stderr, /HOST KEY CHANGED for 172\.16\.86\.11/);
    const fpReal = (await hostExec('master1', 'ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub | cut -d" " -f2')).stdout.trim();
    const fpOther = (await hostExec('master1', 'ssh-keygen -lf /tmp/other.pub | cut -d" " -f2')).stdout.trim();
    assert.ok(r.stderr.includes(fpReal) && r.stderr.includes(fpOther), r.stderr);
    assert.equal(readFileSync(file, 'utf8'), `${forged}\n`, 'known_hosts was rewritten');
  });

  it('--accept-new-host-keys appends unknown hosts once (like accept-new), then they verify', async () => {
    const file = knownHosts('new', '');
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', file, '--accept-new-host-keys']);
    assert.equal(r.code, 0, describeRun(r));
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(lines.length, 3);
    for (const h of lab.hosts) assert.ok(lines.some((l) => l.startsWith(`${h.address} `)), `no line for ${h.address}`);
    const again = await runCli(['-i', lab.inventoryPath, '--known-hosts', file]);
    assert.equal(again.code, 0, describeRun(again));
    assert.equal(readFileSync(file, 'utf8').trim().split('\n').length, 3);
  });

  it('bad inventories exit 2 and open no SSH connection (the hosts\' sshd logs none)', async () => {
    const counts = await Promise.all(lab.hosts.map((h) => sshConnectionCount(h.name)));
    const bad = [
      labInventory([], { replace: [[/^master2 ansible_host=\S+/m, '$&  vip_interface=eth0;reboot']] }),
      labInventory(['vip_prot=9443']),
      labInventory([], { replace: [[/^master2 ansible_host=\S+/m, '$& priority=150']] }),
      labInventory(['kubeconfig=/etc/$(reboot)']),
      labInventory(['vip=fd00::100']),
    ];
    for (const inv of bad) {
      const r = await runCli(['-i', inv, '--known-hosts', lab.knownHostsPath]);
      assert.equal(r.code, 2, describeRun(r));
      assert.match(r.stderr, new RegExp(`${inv.replace(/.*\//, '').replace('.', '\\.')}:\\d+`));
    }
    assert.deepEqual(await Promise.all(lab.hosts.map((h) => sshConnectionCount(h.name))), counts);
  });

  it('become with a sudo password: refused clearly without it, works with KHA_BECOME_PASS, never echoed', async () => {
    const inv = labInventory([], { replace: [[/^ansible_user=kha$/m, `ansible_user=${lab.users.sudoWithPassword}`]] });
    const without = await runCli(['-i', inv, '--known-hosts', lab.knownHostsPath]);
    assert.equal(without.code, 1, describeRun(without));
    assert.match(without.stderr, /password/i);
    assert.match(without.stderr, /--ask-become-pass|KHA_BECOME_PASS/);
    const withPass = await runCli(['-i', inv, '--known-hosts', lab.knownHostsPath, '-v', '--output', 'text'], {
      env: { KHA_BECOME_PASS: lab.users.sudoPassword },
    });
    assert.equal(withPass.code, 0, describeRun(withPass));
    assert.ok(!withPass.stdout.includes(lab.users.sudoPassword) && !withPass.stderr.includes(lab.users.sudoPassword), 'the sudo password was printed');
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('the VRRP password is masked by meaning: never in the -v output (which shows whole commands), in keepalived.conf on the host', async () => {
    const pass = 'Kp4s51xQ';
    // A new password on a running cluster is a split brain until every master has it (issue: managed VRRP
    // changes): do it as the README says for now, keepalived stopped on every master first.
    const stopAll = async () => {
      for (const h of lab.hosts) assert.equal((await hostExec(h.name, 'systemctl stop keepalived')).code, 0);
    };
    await stopAll();
    const r = await runCli(['-i', labInventory([`vrrp_auth_pass=${pass}`]), '--known-hosts', lab.knownHostsPath, '-v', '--output', 'text']);
    assert.equal(r.code, 0, describeRun(r));
    assert.ok(!r.stdout.includes(pass) && !r.stderr.includes(pass), 'the VRRP password was printed');
    assert.match(r.stdout, /\[master1\] \$ # kha-deploy write \/etc\/keepalived\/keepalived\.conf\n\[master1\]   set -eu/, '-v shows the whole remote commands');
    assert.match((await hostExec('master1', 'cat /etc/keepalived/keepalived.conf')).stdout, new RegExp(`auth_pass ${pass}$`, 'm'));
    await stopAll();
    const back = await runCli(['-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath]);
    assert.equal(back.code, 0, describeRun(back));
    assert.doesNotMatch((await hostExec('master1', 'cat /etc/keepalived/keepalived.conf')).stdout, /auth_pass/);
  });

  it('root login without become works too', async () => {
    const r = await runCli(['-i', lab.rootInventoryPath, '--known-hosts', lab.knownHostsPath, '--output', 'json']);
    assert.equal(r.code, 0, describeRun(r));
    for (const h of r.json.hosts) assert.equal(h.changed, 0);
    assert.deepEqual(await vipHolders(), ['master1']);
  });
});
