// The inventory as files on disk: the examples in inventories/, every variable set in every place
// Ansible allows, kubeasz's names, group_vars/host_vars origins in errors, ansible.cfg.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InventoryError, ManyErrors } from '../../src/errors.js';
import { findAnsibleCfg, readAnsibleCfg } from '../../src/inventory/ansible-cfg.js';
import { loadInventory } from '../../src/inventory/load.js';
import type { ClusterSpec } from '../../src/types.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'kha-src-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
/** No ansible.cfg of this machine takes part. */
const isolated = { env: {}, cwd: tmp, home: tmp };
writeFileSync(join(tmp, 'key'), 'not a real key\n');
let n = 0;

/** Write files (path → text) under a fresh directory; returns it. */
function tree(files: Record<string, string>): string {
  const d = join(tmp, `t${n++}`);
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(d, p)), { recursive: true });
    writeFileSync(join(d, p), text);
  }
  return d;
}

async function problemsOf(p: Promise<unknown>): Promise<{ file: string; line?: number; variable?: string; message: string; hint?: string }[]> {
  const e = await p.then(
    (s) => assert.fail(`accepted: ${JSON.stringify(s)}`),
    (x: unknown) => x,
  );
  const errs = e instanceof ManyErrors ? e.errors : [e];
  return errs.flatMap((x) => {
    assert.ok(x instanceof InventoryError, String(x));
    assert.equal(x.exitCode, 2);
    return x.problems.map((p) => ({ file: x.file, ...p }));
  });
}

const summary = (s: ClusterSpec) => ({
  group: s.group,
  vip: s.vip,
  vipPort: s.vipPort,
  apiserverPort: s.apiserverPort,
  primary: s.primary,
  hosts: s.hosts.map((h) => [h.name, h.address, h.user, h.become, h.priority, h.vipInterface ?? null]),
});

describe('inventories/: each example resolves as documented', () => {
  it('kubeasz 2018: [kube-master] + [lb], MASTER_IP, KUBE_APISERVER port, LB_IF, LB_ROLE=master', async () => {
    const s = await loadInventory(join(root, 'inventories/kubeasz-2018/hosts'), isolated);
    assert.deepEqual(summary(s), {
      group: 'kube-master',
      vip: '192.0.2.100',
      vipPort: 8443,
      apiserverPort: 6443,
      primary: '192.0.2.12',
      hosts: [
        ['192.0.2.11', '192.0.2.11', 'root', false, 140, 'eth0'],
        ['192.0.2.12', '192.0.2.12', 'root', false, 150, 'eth0'],
        ['192.0.2.13', '192.0.2.13', 'root', false, 130, 'eth0'],
      ],
    });
    assert.match(s.primaryReason, /192\.0\.2\.12 has LB_ROLE=master \(kubeasz, line 27\)/);
  });

  it('kubeasz 3.x: [kube_master] + [ex_lb], EX_APISERVER_VIP/PORT, SECURE_PORT, LB_ROLE=master', async () => {
    const s = await loadInventory(join(root, 'inventories/kubeasz-3/hosts'), isolated);
    assert.deepEqual(summary(s), {
      group: 'kube_master',
      vip: '192.0.2.100',
      vipPort: 8443,
      apiserverPort: 6443,
      primary: '192.0.2.11',
      hosts: [
        ['192.0.2.11', '192.0.2.11', 'root', false, 150, null],
        ['192.0.2.12', '192.0.2.12', 'root', false, 140, null],
        ['192.0.2.13', '192.0.2.13', 'root', false, 130, null],
      ],
    });
  });

  it('kubespray: ranges, [k8s_cluster:children], ansible_user/become from group_vars/k8s_cluster/, ours from group_vars/kube_control_plane.yml', async () => {
    const s = await loadInventory(join(root, 'inventories/kubespray/inventory.ini'), isolated);
    assert.deepEqual(summary(s), {
      group: 'kube_control_plane',
      vip: '192.0.2.100',
      vipPort: 8443,
      apiserverPort: 6443,
      primary: 'node1',
      hosts: [
        ['node1', '192.0.2.11', 'deploy', true, 150, null],
        ['node2', '192.0.2.12', 'deploy', true, 140, null],
        ['node3', '192.0.2.13', 'deploy', true, 130, null],
      ],
    });
    assert.equal(s.virtualRouterId, 61);
  });

  it('YAML: all → children → masters with a range', async () => {
    const s = await loadInventory(join(root, 'inventories/yaml/hosts.yml'), isolated);
    assert.deepEqual(summary(s).hosts.map((h) => h.slice(0, 4)), [
      ['master1.example.com', 'master1.example.com', 'ops', true],
      ['master2.example.com', 'master2.example.com', 'ops', true],
      ['master3.example.com', 'master3.example.com', 'ops', true],
    ]);
    assert.deepEqual([s.group, s.vip, s.vipPort], ['masters', '192.0.2.100', 8443]);
  });

  it('a directory: every file but *.ini, group_vars/ and host_vars/ (file and directory forms)', async () => {
    const s = await loadInventory(join(root, 'test/fixtures/inventories/dir'), isolated);
    assert.deepEqual(summary(s).hosts, [
      ['m1', '10.0.1.1', 'admin', true, 200, 'ens192'],
      ['m2', '10.0.1.2', 'admin', true, 190, 'eth1'],
      ['m3', '10.0.1.3', 'admin', true, 130, 'eth1'],
    ]);
    assert.deepEqual([s.vipPort, s.virtualRouterId], [8443, 71]);
  });
});

/** Each of our variables, a value other than its default, and how the spec shows it. */
const VARS: [string, string, (s: ClusterSpec) => unknown, unknown][] = [
  ['vip', '10.9.0.100', (s) => s.vip, '10.9.0.100'],
  ['vip_port', '9443', (s) => s.vipPort, 9443],
  ['apiserver_port', '7443', (s) => s.apiserverPort, 7443],
  ['virtual_router_id', '99', (s) => s.virtualRouterId, 99],
  ['advert_int', '2', (s) => s.advertInt, 2],
  ['haproxy_balance', 'leastconn', (s) => s.haproxyBalance, 'leastconn'],
  ['haproxy_health_check', 'tcp', (s) => s.haproxyHealthCheck, 'tcp'],
  ['haproxy_check_inter', '5', (s) => s.haproxyCheckInter, 5],
  ['haproxy_check_fall', '4', (s) => s.haproxyCheckFall, 4],
  ['haproxy_check_rise', '6', (s) => s.haproxyCheckRise, 6],
  ['haproxy_monitor_port', '9404', (s) => s.haproxyMonitorPort, 9404],
  ['vrrp_preempt', 'false', (s) => s.vrrpPreempt, false],
  ['vrrp_preempt_delay', '30', (s) => s.vrrpPreemptDelay, 30],
  ['kubeconfig', '/root/.kube/config', (s) => s.kubeconfig, '/root/.kube/config'],
  ['vrrp_auth_pass', 'pw1234', (s) => s.vrrpAuthPass, 'pw1234'],
  ['ansible_host', '10.9.0.7', (s) => s.hosts[0]!.address, '10.9.0.7'],
  ['ansible_port', '2222', (s) => s.hosts[0]!.port, 2222],
  ['ansible_user', 'deploy', (s) => [s.hosts[0]!.user, s.hosts[0]!.become], ['deploy', true]],
  ['ansible_become', 'true', (s) => s.hosts[0]!.become, true],
  ['ansible_ssh_private_key_file', join(tmp, 'key'), (s) => s.hosts[0]!.privateKeyFile, join(tmp, 'key')],
  ['priority', '200', (s) => s.hosts[0]!.priority, 200],
  ['vip_interface', 'ens9', (s) => s.hosts[0]!.vipInterface, 'ens9'],
  ['ansible_ssh_common_args', '-o ProxyJump=bastion', (s) => s.hosts[0]!.sshCommonArgs, '-o ProxyJump=bastion'],
];

/** One master m1 (one host: cluster and host variables alike), set in `place`. */
function placed(place: string, key: string, value: string): Record<string, string> {
  const hostAddr = key === 'ansible_host' ? '' : 'ansible_host=10.9.0.1';
  // A non-root user needs become; set beside it.
  const pairs: [string, string][] = [[key, value], ...(key === 'ansible_user' ? [['ansible_become', 'true'] as [string, string]] : [])];
  const lines = pairs.map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  const yaml = pairs.map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
  const vipLine = key === 'vip' ? '' : 'vip=10.9.0.100\n';
  const ini = (hostVars: string, sections: string) => `[kube_control_plane]\nm1 ${hostAddr} ${hostVars}\n[k8s_cluster:children]\nkube_control_plane\n${sections}[all:vars]\n${vipLine}`;
  const section = (name: string) => ini('', `[${name}:vars]\n${lines.join('\n')}\n`);
  switch (place) {
    case 'host line':
      return { hosts: ini(lines.join(' '), '') };
    case '[kube_control_plane:vars]':
      return { hosts: section('kube_control_plane') };
    case '[k8s_cluster:vars] (parent)':
      return { hosts: section('k8s_cluster') };
    case '[all:vars]':
      return { hosts: ini('', '') + lines.join('\n') + '\n' };
    case 'YAML inventory host':
      return {
        'hosts.yml': `all:\n  vars:\n    ${key === 'vip' ? 'x: 1' : 'vip: 10.9.0.100'}\n  children:\n    kube_control_plane:\n      hosts:\n        m1:\n${hostAddr ? '          ansible_host: 10.9.0.1\n' : ''}${yaml.map((l) => `          ${l}\n`).join('')}`,
      };
    default:
      return { hosts: ini('', ''), [place]: yaml.join('\n') + '\n' };
  }
}

const PLACES = ['host line', '[kube_control_plane:vars]', '[k8s_cluster:vars] (parent)', '[all:vars]', 'group_vars/all.yml', 'group_vars/k8s_cluster/x.yml', 'group_vars/kube_control_plane.yaml', 'host_vars/m1.yml', 'YAML inventory host'];

describe('no variable kha-deploy uses is dropped: each one, in each place Ansible allows', () => {
  for (const [key, value, read, want] of VARS) {
    it(key, async () => {
      for (const place of PLACES) {
        const files = placed(place, key, value);
        const d = tree(files);
        const s = await loadInventory(join(d, files['hosts.yml'] ? 'hosts.yml' : 'hosts'), isolated).catch((e: unknown) => assert.fail(`${key} in ${place}: ${e instanceof InventoryError ? JSON.stringify(e.problems) : String(e)}`));
        assert.deepEqual(read(s), want, `${key} set in ${place}`);
      }
    });
  }
});

describe('precedence across files, as Ansible', () => {
  it('group_vars files beat every group section of the INI file; host_vars beat host lines', async () => {
    const d = tree({
      hosts: '[masters]\nm1 ansible_host=10.0.0.1 priority=100\nm2 ansible_host=10.0.0.2\n[masters:vars]\nvip=10.0.0.9\nvip_port=1111\n[all:vars]\nadvert_int=3\n',
      'group_vars/all.yml': 'vip_port: 2222\nadvert_int: 4\n',
      'host_vars/m1.yml': 'priority: 160\n',
    });
    const s = await loadInventory(join(d, 'hosts'), isolated);
    assert.deepEqual([s.vipPort, s.advertInt, s.hosts[0]!.priority], [2222, 4, 160]);
  });

  it('a bad value in group_vars is reported against that file and line', async () => {
    const d = tree({
      hosts: '[masters]\nm1 ansible_host=10.0.0.1\n[masters:vars]\nvip=10.0.0.9\n',
      'group_vars/masters/ha.yml': '# HA\nvirtual_router_id: 300\n',
    });
    const ps = await problemsOf(loadInventory(join(d, 'hosts'), isolated));
    assert.deepEqual(ps.map((p) => [p.file, p.line, p.variable]), [[join(d, 'group_vars/masters/ha.yml'), 2, 'virtual_router_id']]);
  });

  it('problems in two files: one InventoryError per file (exit 2)', async () => {
    const d = tree({
      hosts: '[masters]\nm1 ansible_host=10.0.0.1 priority=0\n[masters:vars]\nvip=10.0.0.9\n',
      'host_vars/m1.yml': 'ansible_port: 70000\n',
    });
    const ps = await problemsOf(loadInventory(join(d, 'hosts'), isolated));
    assert.deepEqual(ps.map((p) => [p.file, p.line, p.variable]), [
      [join(d, 'hosts'), 2, 'priority'],
      [join(d, 'host_vars/m1.yml'), 1, 'ansible_port'],
    ]);
  });

  it('refuses an encrypted vars file and a vars file that is not a mapping', async () => {
    const d = tree({
      hosts: '[masters]\nm1 ansible_host=10.0.0.1\n[masters:vars]\nvip=10.0.0.9\n',
      'group_vars/all.yml': '$ANSIBLE_VAULT;1.1;AES256\n6162\n',
      'group_vars/masters.yml': '- a\n- b\n',
    });
    const ps = await problemsOf(loadInventory(join(d, 'hosts'), isolated));
    assert.deepEqual(ps.map((p) => p.message.replace(/:.*/, '')), ['this vars file is encrypted with ansible-vault', 'a vars file must be a mapping of variable names to values']);
  });
});

describe("kubeasz's names", () => {
  const lb = (lines: string, vars = '') => `[kube-master]\n10.0.0.1\n10.0.0.2\n[lb]\n${lines}\n[all:vars]\n${vars}\n`;
  const load = (text: string) => loadInventory(join(tree({ hosts: text }), 'hosts'), isolated);

  it('our name and theirs set to different values: refused, naming both lines', async () => {
    const ps = await problemsOf(load(lb('10.0.0.1 LB_ROLE=master\n10.0.0.2 LB_ROLE=backup', 'MASTER_IP="10.0.0.9"\nvip=10.0.0.8')));
    assert.deepEqual(ps.map((p) => [p.line, p.variable, p.message]), [[8, 'MASTER_IP', 'vip="10.0.0.8" (line 9) and MASTER_IP="10.0.0.9" (line 8) disagree: kha-deploy reads both as vip']]);
  });

  it('KUBE_APISERVER gives vip_port; a port that disagrees with vip_port is refused', async () => {
    const s = await load(lb('10.0.0.1 LB_ROLE=master\n10.0.0.2 LB_ROLE=backup', 'MASTER_IP="10.0.0.9"\nKUBE_APISERVER="https://{{ MASTER_IP }}:9443"'));
    assert.equal(s.vipPort, 9443);
    const ps = await problemsOf(load(lb('10.0.0.1\n10.0.0.2', 'MASTER_IP="10.0.0.9"\nKUBE_APISERVER="https://{{ MASTER_IP }}:9443"\nvip_port=8443')));
    assert.match(ps[0]!.message, /vip_port="8443" \(line 10\) and KUBE_APISERVER="9443" \(line 9\) disagree/);
  });

  it('[lb] hosts other than the masters: refused, saying what kha-deploy does', async () => {
    const ps = await problemsOf(load(lb('10.0.0.1 LB_ROLE=master\n10.0.0.5 LB_ROLE=backup', 'MASTER_IP="10.0.0.9"')));
    assert.equal(ps[0]!.variable, 'lb');
    assert.match(ps[0]!.message, /^\[lb\] lists 10\.0\.0\.5, not in \[kube-master\]; \[kube-master\] lists 10\.0\.0\.2, not in \[lb\]: kha-deploy installs keepalived and haproxy on the masters themselves/);
  });

  it('LB_ROLE: two masters, an unknown role, and a priority that contradicts it are refused', async () => {
    let ps = await problemsOf(load(lb('10.0.0.1 LB_ROLE=master\n10.0.0.2 LB_ROLE=master', 'MASTER_IP="10.0.0.9"')));
    assert.match(ps[0]!.message, /LB_ROLE=master is set on 10\.0\.0\.1 and 10\.0\.0\.2/);
    ps = await problemsOf(load(lb('10.0.0.1 LB_ROLE=primary\n10.0.0.2 LB_ROLE=master', 'MASTER_IP="10.0.0.9"')));
    assert.match(ps[0]!.message, /LB_ROLE must be master or backup, got "primary"/);
    ps = await problemsOf(load(lb('10.0.0.1 LB_ROLE=master priority=100\n10.0.0.2 LB_ROLE=backup priority=120', 'MASTER_IP="10.0.0.9"')));
    assert.match(ps[0]!.message, /LB_ROLE=master is on 10\.0\.0\.1 \(line 5\) but 10\.0\.0\.2 has the highest priority \(120, line 6\)/);
  });

  it('an empty [ex_lb] (kubeasz 3.x default, lines commented) is ignored', async () => {
    const s = await load('[kube_master]\n10.0.0.1\n[ex_lb]\n#10.0.0.6 LB_ROLE=backup EX_APISERVER_VIP=10.0.0.250\n[kube_master:vars]\nvip=10.0.0.9\n');
    assert.deepEqual([s.group, s.vip, s.primary], ['kube_master', '10.0.0.9', '10.0.0.1']);
  });
});

describe('ansible.cfg', () => {
  it('is found as Ansible finds it: ANSIBLE_CONFIG, ./ansible.cfg (not in a world-writable directory), ~/.ansible.cfg, /etc/ansible/ansible.cfg', () => {
    const files = new Set(['/w/ansible.cfg', '/h/.ansible.cfg', '/etc/ansible/ansible.cfg', '/e/ansible.cfg']);
    const exists = (p: string) => (files.has(p) ? 'file' : p === '/e' ? 'dir' : undefined) as 'file' | 'dir' | undefined;
    const base = { cwd: '/w', home: '/h', exists, worldWritable: () => false };
    assert.equal(findAnsibleCfg({ ...base, env: { ANSIBLE_CONFIG: '/e' } }), '/e/ansible.cfg');
    assert.equal(findAnsibleCfg({ ...base, env: {} }), '/w/ansible.cfg');
    assert.equal(findAnsibleCfg({ ...base, env: {}, worldWritable: () => true }), '/h/.ansible.cfg');
    files.delete('/h/.ansible.cfg');
    assert.equal(findAnsibleCfg({ ...base, env: {}, worldWritable: () => true }), '/etc/ansible/ansible.cfg');
  });

  it('reads remote_user, remote_port, private_key_file, become, inventory; warns about host_key_checking', () => {
    const c = readAnsibleCfg('[defaults]\ninventory = ./inv/hosts, /abs/more\nremote_user = deploy ; comment\nprivate_key_file = ~/.ssh/k\nhost_key_checking = False\n[privilege_escalation]\nbecome = True\n', '/p/ansible.cfg', '/home/u');
    assert.deepEqual(c.config.map((v) => [v.key, v.value, v.line]), [['ansible_user', 'deploy', 3], ['ansible_ssh_private_key_file', '/home/u/.ssh/k', 4], ['ansible_become', 'True', 7]]);
    assert.deepEqual(c.inventory, ['/p/inv/hosts', '/abs/more']);
    assert.match(c.warnings[0]!, /host_key_checking = False is not honoured/);
    assert.deepEqual(readAnsibleCfg('[defaults]\nremote_user: deploy\n', '/p/ansible.cfg').problems.map((p) => p.line), [2]);
  });

  it('gives defaults under every inventory variable, and the inventory when -i is omitted', async () => {
    const d = tree({
      'ansible.cfg': '[defaults]\ninventory = hosts\nremote_user = deploy\n[privilege_escalation]\nbecome = true\n',
      hosts: '[masters]\nm1 ansible_host=10.0.0.1\nm2 ansible_host=10.0.0.2 ansible_user=root\n[masters:vars]\nvip=10.0.0.9\n',
    });
    const s = await loadInventory(undefined, { env: {}, cwd: d, home: tmp });
    assert.deepEqual(s.hosts.map((h) => [h.user, h.become]), [['deploy', true], ['root', true]]);
    const e = await loadInventory(join(d, 'hosts'), { env: { ANSIBLE_CONFIG: join(d, 'ansible.cfg') }, cwd: tmp, home: tmp });
    assert.equal(e.hosts[0]!.user, 'deploy');
  });
});
