// The operators' own inventory files on the lab, unchanged but for the addresses (192.0.2.x → the lab's)
// and the key: a kubeasz 1.x hosts file with an ansible.cfg beside it, and a kubespray inventory whose
// connection settings live in group_vars/. Each deploy converges in one run; the hosts show it.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, vipHolders } from '../helpers/lab.js';

const EXAMPLES = fileURLToPath(new URL('../../inventories/', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'kha-e2e-operators-'));
const addr = (n: 1 | 2 | 3) => lab.hosts[n - 1]!.address;

/** The documentation addresses of the examples, as the lab's. */
function toLab(text: string): string {
  return text
    .replace(/\b192\.0\.2\.100\b/g, lab.vip)
    .replace(/\b192\.0\.2\.11\b/g, addr(1))
    .replace(/\b192\.0\.2\.12\b/g, addr(2))
    .replace(/\b192\.0\.2\.13\b/g, addr(3));
}

async function deploy(inventory: string, env: Record<string, string> = {}) {
  const r = await runCli(deployArgs(inventory, '--output', 'json'), { env: { ANSIBLE_CONFIG: join(dir, 'no-ansible.cfg'), ...env } });
  assert.equal(r.code, 0, describeRun(r));
  return r;
}

/** The next whole second (epoch), after waiting for it: journald's --since has one-second resolution. */
async function nextSecond(): Promise<number> {
  const t = Math.ceil(Date.now() / 1000);
  await new Promise((r) => setTimeout(r, t * 1000 - Date.now() + 20));
  return t;
}

/** Logins sshd accepted on `host` since `since` (epoch seconds), as `user from address` lines. */
async function loginsSince(host: string, since: number): Promise<string[]> {
  const r = await hostExec(host, `journalctl --since @${since} -o cat --no-pager | sed -n 's/^Accepted publickey for \\(\\S*\\) from \\(\\S*\\) .*/\\1 \\2/p'`);
  return r.stdout.trim().split('\n').filter(Boolean);
}

/** `interface`, `virtual_router_id` and `priority` of the keepalived.conf on `host`, as `key value` in that order. */
async function keepalivedInstance(host: string): Promise<string> {
  const conf = (await hostExec(host, 'cat /etc/keepalived/keepalived.conf')).stdout;
  return ['interface', 'virtual_router_id', 'priority'].map((k) => `${k} ${new RegExp(`^\\s*${k}\\s+(\\S+)`, 'm').exec(conf)?.[1] ?? '-'}`).join(' ');
}

describe("operators' own inventories on the lab", { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await deploy(lab.inventoryPath);
  });
  after(async () => {
    // Leave the lab as the other files expect it: its own inventory, master1 primary.
    await deploy(lab.inventoryPath);
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('a kubeasz 1.x hosts file ([kube-master], [lb] with LB_ROLE/LB_IF, MASTER_IP, KUBE_APISERVER) and ansible.cfg: one run moves the primary to the LB_ROLE=master host', async () => {
    const hosts = join(dir, 'kubeasz-hosts');
    writeFileSync(hosts, toLab(readFileSync(join(EXAMPLES, 'kubeasz-2018', 'hosts'), 'utf8')));
    // kubeasz runs as root with the deploy node's key: ansible.cfg says which key and user.
    const cfg = join(dir, 'ansible.cfg');
    writeFileSync(cfg, `[defaults]\nremote_user = root\nprivate_key_file = ${lab.keyPath}\n`);
    const since = await nextSecond();
    const r = await deploy(hosts, { ANSIBLE_CONFIG: cfg });
    assert.deepEqual(await vipHolders(), ['master2'], describeRun(r));
    assert.equal(await keepalivedInstance('master2'), 'interface eth0 virtual_router_id 51 priority 150');
    assert.equal(await keepalivedInstance('master1'), 'interface eth0 virtual_router_id 51 priority 140');
    for (const h of ['master1', 'master2', 'master3']) {
      const logins = await loginsSince(h, since);
      assert.ok(logins.length > 0 && logins.every((l) => l.startsWith('root ')), `${h}: ${logins.join(', ')}`);
    }
    const haproxy = (await hostExec('master3', 'grep -E "^[[:space:]]*(bind|server) " /etc/haproxy/haproxy.cfg')).stdout;
    assert.match(haproxy, /bind \S*:8443/);
    for (const n of [1, 2, 3] as const) assert.match(haproxy, new RegExp(`server \\S+ ${addr(n).replace(/\./g, '\\.')}:6443 `));
    const again = await deploy(hosts, { ANSIBLE_CONFIG: cfg });
    assert.ok(again.json.hosts.every((h: { changed: number }) => h.changed === 0), again.stdout);
  });

  it('a kubespray inventory with group_vars/: ansible_user and ansible_become from group_vars/k8s_cluster reach the masters', async () => {
    const inv = join(dir, 'kubespray');
    cpSync(join(EXAMPLES, 'kubespray'), inv, { recursive: true });
    const edit = (file: string, f: (t: string) => string) => writeFileSync(join(inv, file), f(readFileSync(join(inv, file), 'utf8')));
    edit('inventory.ini', toLab);
    // The lab's VRID, so that this is not a VRID change of a running cluster.
    edit('group_vars/kube_control_plane.yml', (t) => toLab(t).replace(/^virtual_router_id: \d+$/m, 'virtual_router_id: 51'));
    edit('group_vars/k8s_cluster/k8s-cluster.yml', (t) => t.replace(/^ansible_user: deploy$/m, `ansible_user: kha\nansible_ssh_private_key_file: ${lab.keyPath}`));
    const since = await nextSecond();
    const r = await deploy(join(inv, 'inventory.ini'));
    assert.deepEqual(await vipHolders(), ['master1'], describeRun(r));
    assert.equal(await keepalivedInstance('master1'), 'interface eth0 virtual_router_id 51 priority 150');
    for (const h of ['master1', 'master2', 'master3']) {
      const logins = await loginsSince(h, since);
      assert.ok(logins.length > 0 && logins.every((l) => l.startsWith('kha ')), `${h}: ${logins.join(', ')}`);
    }
  });
});
