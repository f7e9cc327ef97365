// Masters reachable ONLY through a bastion: a fourth lab container (`lab/up.sh --bastion`:
// kha-lab-bastion, 172.16.86.14, the host image with sshd and user kha, no apiserver, not a master)
// is the jump host, and for the duration of this file this machine's own SSH traffic to master1..3
// is dropped (iptables OUTPUT/INPUT rules on the lab gateway address 172.16.86.1 <-> each master's
// tcp/22; the bastion reaches the masters over the bridge, which these chains do not see).
// Proven first (a direct TCP connect and a direct ssh to the masters time out; the bastion connects),
// then a deploy through `--ssh-config` (ProxyJump bastion) converges a change and back, with
// sshd on every master logging its logins from the bastion's address only and the bastion one login
// per run; the rerun changes nothing; a bastion whose host key changed is refused, naming the hop.
// The rules are removed in `after` (and on exit or SIGINT/SIGTERM); the file ends on the default lab
// (bastion removed by a plain lab/up.sh, converged with the lab's inventory, reached directly).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { labInventory } from '../helpers/inventory.js';
import { bastionExec, hostExec, lab, labSsh, labUp } from '../helpers/lab.js';

const dir = mkdtempSync(join(tmpdir(), 'kha-bastion-only-'));
const BASTION = lab.bastion.address;
const TAG = 'kha-e2e-bastion-only';
const MASTERS = lab.hosts.map((h) => h.name);

// ---------------------------------------------------------------------------------------------
// iptables: this machine's direct SSH to the masters, dropped (no reset, no ICMP: a timeout)

function iptables(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('iptables', ['-w', '5', ...args], { encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

function cutRules(): string[][] {
  return lab.hosts.flatMap((h) => [
    ['OUTPUT', '-s', lab.gateway, '-d', h.address, '-p', 'tcp', '--dport', '22', '-m', 'comment', '--comment', TAG, '-j', 'DROP'],
    ['INPUT', '-s', h.address, '-d', lab.gateway, '-p', 'tcp', '--sport', '22', '-m', 'comment', '--comment', TAG, '-j', 'DROP'],
  ]);
}

/** This file's rules present in OUTPUT and INPUT, as `iptables -S` prints them. */
function rulesInPlace(): string[] {
  return ['OUTPUT', 'INPUT'].flatMap((chain) => iptables(['-S', chain]).out.split('\n').filter((l) => l.includes(`--comment ${TAG}`)));
}

/** Removes every rule tagged with this file's comment (also those a killed earlier run left). Synchronous: usable on exit. */
function removeRules(): void {
  for (const line of rulesInPlace()) iptables(['-D', ...line.replace(/^-A /, '').split(' ')]);
}

function addRules(): void {
  for (const rule of cutRules()) {
    const r = iptables(['-I', ...rule]);
    if (r.code !== 0) {
      removeRules();
      throw new Error(`iptables -I ${rule.join(' ')}: ${r.out}`);
    }
  }
}

const onExit = () => removeRules();
const onSignal = (sig: NodeJS.Signals) => {
  removeRules();
  process.kill(process.pid, sig);
};

/** A TCP connect from this machine: 'connected', 'timeout' (no answer within ms) or the error code. */
function tcpConnect(address: string, port: number, ms: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: address, port });
    const done = (what: string) => {
      clearTimeout(t);
      s.destroy();
      resolve(what);
    };
    const t = setTimeout(() => done('timeout'), ms);
    s.once('connect', () => done('connected'));
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

// ---------------------------------------------------------------------------------------------
// What the hosts' sshd logged

function parseLogins(out: string): [string, string][] {
  return out
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^Accepted publickey for (\S+) from (\S+)/.exec(l);
      return [m?.[1] ?? '?', m?.[2] ?? '?'];
    });
}
const LOGINS = (since: number) => `journalctl -u ssh.service --since @${since} --no-pager -o cat | grep '^Accepted publickey' || true`;

/** "Accepted publickey for USER from ADDR" lines of a master's sshd since `since` (epoch seconds), as [user, addr]. */
async function logins(host: string, since: number): Promise<[string, string][]> {
  return parseLogins((await hostExec(host, LOGINS(since))).stdout);
}
async function bastionLogins(since: number): Promise<[string, string][]> {
  return parseLogins((await bastionExec(LOGINS(since))).stdout);
}

/** A `--since` second that no earlier login can fall into: the next second on the hosts' clock, once it has begun. */
async function now(): Promise<number> {
  const t = Number((await hostExec('master1', 'date +%s.%N')).stdout.trim());
  await new Promise((r) => setTimeout(r, Math.ceil((Math.floor(t) + 1 - t) * 1000) + 50));
  return Math.floor(t) + 1;
}

// ---------------------------------------------------------------------------------------------

const sshConfig = join(dir, 'ssh_config');
writeFileSync(
  sshConfig,
  [
    '# generated by test/e2e/bastion-only.test.ts',
    'Host bastion',
    `  HostName ${BASTION}`,
    '  User kha',
    `  IdentityFile ${lab.keyPath}`,
    '  IdentitiesOnly yes',
    `Host ${lab.hosts.map((h) => h.address).join(' ')}`,
    '  ProxyJump bastion',
    '',
  ].join('\n'),
);

/** One run through the bastion; asserts exit 0, the changed counts, and who logged in where. */
async function throughBastion(inventory: string, label: string, expect: 'changed' | 'unchanged'): Promise<void> {
  const t0 = await now();
  const r = await runCli(['-i', inventory, '--known-hosts', lab.knownHostsPath, '--ssh-config', sshConfig, '--output', 'json']);
  assert.equal(r.code, 0, `${label}: ${describeRun(r)}`);
  const changed = Object.fromEntries(r.json.hosts.map((h: { host: string; changed: number }) => [h.host, h.changed]));
  for (const m of MASTERS) {
    if (expect === 'changed') assert.ok(changed[m] > 0, `${label}: ${m} not changed: ${JSON.stringify(changed)}`);
    else assert.equal(changed[m], 0, `${label}: ${m} changed=${changed[m]}`);
  }
  for (const m of MASTERS) {
    const seen = await logins(m, t0);
    assert.ok(seen.length >= 1, `${label}: no login on ${m}`);
    assert.deepEqual([...new Set(seen.map(([, from]) => from))], [BASTION], `${label}: ${m} was reached from ${JSON.stringify(seen)}, not only from the bastion ${BASTION}`);
  }
  // One shared connection to the bastion per run, from this machine.
  assert.deepEqual(await bastionLogins(t0), [['kha', lab.gateway]], `${label}: the bastion's logins`);
}

async function balanceOn(host: string): Promise<string> {
  return (await hostExec(host, "awk '$1==\"balance\"{print $2}' /etc/haproxy/haproxy.cfg | sort -u | tr '\\n' ' '")).stdout.trim();
}

describe('masters reachable only through the bastion (kha-lab-bastion, 172.16.86.14)', { concurrency: false }, () => {
  let cut = false;

  before(async () => {
    removeRules(); // a killed earlier run may have left some
    await labUp({ bastion: true });
    const b = await bastionExec("systemctl is-active kube-apiserver.service keepalived.service haproxy.service | tr '\\n' ' '; ss -Htln | awk '{print $4}' | tr '\\n' ' '");
    assert.doesNotMatch(b.stdout, /(^| )active |:6443 |:8443 /, `the bastion must not run an apiserver, keepalived or haproxy: ${b.stdout}`);
    assert.ok(readFileSync(lab.knownHostsPath, 'utf8').split('\n').some((l) => l.startsWith(`${BASTION} ssh-ed25519 `)), 'known_hosts has no line for the bastion');
    // The starting point: converged with the lab's inventory, reached directly.
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath]);
    assert.equal(r.code, 0, describeRun(r));
    process.once('exit', onExit);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    cut = true;
    addRules();
  });

  after(async () => {
    try {
      removeRules();
      assert.deepEqual(rulesInPlace(), [], 'iptables rules left behind');
    } finally {
      process.off('exit', onExit);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    // Back to the default lab: the bastion removed (and its known_hosts lines), converged, reached directly.
    await labUp();
    assert.ok(!readFileSync(lab.knownHostsPath, 'utf8').includes(`${BASTION} `), 'known_hosts still has the removed bastion');
    if (!cut) return;
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath, '--output', 'json']);
    assert.equal(r.code, 0, describeRun(r));
  });

  it('this machine cannot reach master1..3:22 directly (TCP connect and ssh time out); the bastion reaches them', async () => {
    const direct = await Promise.all(lab.hosts.map((h) => tcpConnect(h.address, 22, 2_000)));
    assert.deepEqual(direct, ['timeout', 'timeout', 'timeout'], `direct TCP connects to the masters' port 22: ${direct}`);
    assert.equal(await tcpConnect(BASTION, 22, 2_000), 'connected', "the bastion's sshd");
    const ssh = await labSsh('master1', 'true', { sshArgs: ['-o', 'ConnectTimeout=3'] });
    assert.notEqual(ssh.code, 0);
    assert.match(ssh.stderr, /timed out/i, ssh.stderr);
    for (const h of lab.hosts) {
      const r = await bastionExec(`timeout 3 bash -c 'exec 3<>/dev/tcp/${h.address}/22 && head -c 7 <&3'`);
      assert.equal(r.code, 0, `the bastion cannot reach ${h.name}:22: ${r.stderr}`);
      assert.equal(r.stdout, 'SSH-2.0', `${h.name}:22 from the bastion`);
    }
  });

  it('a change converges through the bastion (haproxy_balance=leastconn), the rerun changes nothing, and back', async () => {
    const leastconn = labInventory(['haproxy_balance=leastconn']);
    await throughBastion(leastconn, 'leastconn', 'changed');
    for (const m of MASTERS) assert.equal(await balanceOn(m), 'leastconn', `${m}'s haproxy.cfg`);
    await throughBastion(leastconn, 'leastconn rerun', 'unchanged');
    await throughBastion(lab.inventoryPath, 'back to the lab inventory', 'changed');
    for (const m of MASTERS) assert.notEqual(await balanceOn(m), 'leastconn', `${m}'s haproxy.cfg`);
  });

  it("the bastion's host key changed: refused, naming the jump host; no master and no bastion login", async () => {
    const other = join(dir, 'other');
    assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'forged', '-f', other]).status, 0);
    const forged = readFileSync(`${other}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    const kh = join(dir, 'known_hosts-forged');
    writeFileSync(kh, readFileSync(lab.knownHostsPath, 'utf8').split('\n').filter((l) => !l.startsWith(`${BASTION} `)).concat(`${BASTION} ${forged}`, '').join('\n'));
    const t0 = await now();
    const r = await runCli(['-i', lab.inventoryPath, '--known-hosts', kh, '--ssh-config', sshConfig]);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(r.stderr, new RegExp(`\\[master1\\] HOST KEY CHANGED for ${BASTION.replace(/\./g, '\\.')}:22 \\(jump host for master1\\)`), describeRun(r));
    for (const m of MASTERS) assert.deepEqual(await logins(m, t0), [], `${m} saw a login`);
    assert.deepEqual(await bastionLogins(t0), [], 'the bastion accepted a login');
  });
});
