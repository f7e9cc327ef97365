// Deploy through a jump host on the lab: master3 is the bastion for master1 and master2, given once
// by a generated ssh_config (--ssh-config: ProxyJump, User and IdentityFile from the config) and once
// by ansible_ssh_common_args (kubespray's way: -o ProxyJump=…, and the -o ProxyCommand="ssh -W %h:%p …"
// form). Asserted on what the hosts show: master1's sshd accepted the logins from master3's address,
// master3's sshd accepted two logins per run (its own session and the one shared bastion connection),
// the rollout converges and a rerun changes nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { labInventory } from '../helpers/inventory.js';
import { hostExec, lab, requireLab } from '../helpers/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'kha-bastion-'));
const BASTION = '172.16.86.13';
const DROP_IN = '/etc/ssh/sshd_config.d/zz-kha-bastion-test.conf';
let dropIn = false;

/** "Accepted publickey for USER from ADDR" lines of the host's sshd since `since` (epoch seconds), as [user, addr]. */
async function logins(host: string, since: number): Promise<[string, string][]> {
  const r = await hostExec(host, `journalctl -u ssh.service --since @${since} --no-pager -o cat | grep '^Accepted publickey' || true`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^Accepted publickey for (\S+) from (\S+)/.exec(l);
      return [m?.[1] ?? '?', m?.[2] ?? '?'];
    });
}

/** A `--since` second that no earlier login can fall into: the next second on the hosts' clock, once it has begun. */
async function now(): Promise<number> {
  const t = Number((await hostExec('master1', 'date +%s.%N')).stdout.trim());
  await new Promise((r) => setTimeout(r, Math.ceil((Math.floor(t) + 1 - t) * 1000) + 50));
  return Math.floor(t) + 1;
}

/** Make haproxy.cfg on master1 and master2 differ, so the deploy through the bastion has to write and reload. */
async function drift(): Promise<void> {
  for (const h of ['master1', 'master2']) {
    const r = await hostExec(h, "printf '# drift made by bastion.test.ts\\n' >> /etc/haproxy/haproxy.cfg");
    assert.equal(r.code, 0, r.stderr);
  }
}

async function deployTwice(args: string[], label: string, since: () => Promise<number>): Promise<void> {
  await drift();
  const t0 = await since();
  const r = await runCli([...args, '--output', 'json']);
  assert.equal(r.code, 0, `${label}: ${describeRun(r)}`);
  const changed = Object.fromEntries(r.json.hosts.map((h: { host: string; changed: number }) => [h.host, h.changed]));
  assert.ok(changed.master1 > 0 && changed.master2 > 0, `${label}: the drift on master1/master2 was not repaired: ${JSON.stringify(changed)}`);
  assert.equal(changed.master3, 0, `${label}: ${JSON.stringify(changed)}`);
  for (const h of ['master1', 'master2']) {
    const seen = await logins(h, t0);
    assert.ok(seen.length >= 1, `${label}: no login on ${h}`);
    assert.deepEqual([...new Set(seen.map(([, from]) => from))], [BASTION], `${label}: ${h} was reached from ${JSON.stringify(seen)}, not only from the bastion ${BASTION}`);
    const cfg = await hostExec(h, 'grep -c "drift made by bastion" /etc/haproxy/haproxy.cfg || true');
    assert.equal(cfg.stdout.trim(), '0', `${label}: haproxy.cfg on ${h} still has the drift`);
  }
  const bastionLogins = (await logins('master3', t0)).filter(([, from]) => from !== BASTION);
  assert.equal(bastionLogins.length, 2, `${label}: master3 should see its own session and ONE shared bastion connection: ${JSON.stringify(bastionLogins)}`);

  const t1 = await since();
  const again = await runCli([...args, '--output', 'json']);
  assert.equal(again.code, 0, `${label} rerun: ${describeRun(again)}`);
  for (const hr of again.json.hosts) assert.equal(hr.changed, 0, `${label} rerun: ${hr.host} changed=${hr.changed}`);
  assert.deepEqual([...new Set((await logins('master1', t1)).map(([, from]) => from))], [BASTION], `${label} rerun: master1 not reached through the bastion`);
}

describe('deploy through a bastion (master3 as the jump host for master1 and master2)', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    // The jump needs TCP forwarding on master3's sshd (OpenSSH's default is yes; the lab does not change it).
    const t = await hostExec('master3', "sshd -T 2>/dev/null | awk '$1==\"allowtcpforwarding\"{print $2}'");
    if (t.stdout.trim() !== 'yes' && t.stdout.trim() !== 'all') {
      const r = await hostExec('master3', `printf 'AllowTcpForwarding yes\\n' > ${DROP_IN} && systemctl reload ssh.service`);
      assert.equal(r.code, 0, r.stderr);
      dropIn = true;
    }
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath]);
    assert.equal(r.code, 0, describeRun(r));
  });

  after(async () => {
    if (dropIn) await hostExec('master3', `rm -f ${DROP_IN} && systemctl reload ssh.service`);
    // Leave the lab converged with its own inventory, reached directly.
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath]);
    assert.equal(r.code, 0, describeRun(r));
  });

  it('via --ssh-config: ProxyJump through an alias, User and IdentityFile from the config (not in the inventory)', async () => {
    const cfg = join(dir, 'ssh_config');
    writeFileSync(
      cfg,
      [
        '# generated by test/e2e/bastion.test.ts',
        `Host jump ${BASTION}`,
        `  HostName ${BASTION}`,
        'Host jump 172.16.86.1? !172.16.86.100',
        '  User kha',
        `  IdentityFile ${lab.keyPath}`,
        '  IdentitiesOnly yes',
        'Host 172.16.86.11 172.16.86.12',
        '  ProxyJump jump',
        '',
      ].join('\n'),
    );
    const inv = labInventory([], { replace: [[/^ansible_user=.*\n/m, ''], [/^ansible_ssh_private_key_file=.*\n/m, '']] });
    assert.doesNotMatch(readFileSync(inv, 'utf8'), /ansible_user|private_key/);
    await deployTwice(['-i', inv, '--known-hosts', lab.knownHostsPath, '--ssh-config', cfg], '--ssh-config', now);
  });

  it("via ansible_ssh_common_args: -o ProxyJump=kha@master3 on master1, kubespray's -o ProxyCommand=\"ssh -W %h:%p -q kha@master3\" on master2", async () => {
    const inv = labInventory([], {
      replace: [
        [/^(master1 .*)$/m, `$1 ansible_ssh_common_args='-o ProxyJump=kha@${BASTION} -o StrictHostKeyChecking=no'`],
        [/^(master2 .*)$/m, `$1 ansible_ssh_common_args='-o ProxyCommand="ssh -W %h:%p -q kha@${BASTION}"'`],
      ],
    });
    await deployTwice(['-i', inv, '--known-hosts', lab.knownHostsPath, '--ssh-config', 'none'], 'ansible_ssh_common_args', now);
  });

  it("a bastion whose host key changed is refused, naming the jump host; master1 sees no login", async () => {
    const t0 = await now();
    const other = (await hostExec('master3', 'ssh-keygen -q -t ed25519 -N "" -f /tmp/kha-other <<<y >/dev/null; cut -d" " -f1,2 /tmp/kha-other.pub; rm -f /tmp/kha-other*')).stdout.trim();
    const kh = join(dir, 'known_hosts-forged');
    writeFileSync(kh, readFileSync(lab.knownHostsPath, 'utf8').split('\n').filter((l) => !l.startsWith(`${BASTION} `)).concat(`${BASTION} ${other}`, '').join('\n'));
    const inv = labInventory([], { replace: [[/^(master1 .*)$/m, `$1 ansible_ssh_common_args='-o ProxyJump=kha@${BASTION}'`]] });
    const r = await runCli(['-i', inv, '--known-hosts', kh, '--ssh-config', 'none', '--limit', 'master1']);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stderr, new RegExp(`\\[master1\\] HOST KEY CHANGED for ${BASTION.replace(/\./g, '\\.')}:22 \\(jump host for master1\\)`));
    assert.deepEqual(await logins('master1', t0), []);
  });

  it('an unsupported ProxyCommand is exit 2 before any host is contacted', async () => {
    const t0 = await now();
    const inv = labInventory([], { replace: [[/^(master1 .*)$/m, `$1 ansible_ssh_common_args='-o ProxyCommand="nc -X connect -x proxy:3128 %h %p"'`]] });
    const r = await runCli(['-i', inv, '--known-hosts', lab.knownHostsPath, '--ssh-config', 'none']);
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /master1: ansible_ssh_common_args: ProxyCommand "nc -X connect -x proxy:3128 %h %p" is not supported/);
    for (const h of ['master1', 'master2', 'master3']) assert.deepEqual(await logins(h, t0), [], `${h} was contacted`);
  });
});
