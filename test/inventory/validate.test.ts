import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InventoryError } from '../../src/errors.js';
import { loadInventory } from '../../src/inventory/load.js';
import { editDistance, suggestVariable } from '../../src/inventory/names.js';
import { parseInventoryText } from '../../src/inventory/parse.js';
import { assignPriorities } from '../../src/inventory/priority.js';
import { type ValidateOptions, validateInventory } from '../../src/inventory/validate.js';

const FILE = '/srv/inv/hosts.ini';
const spec = (text: string, opts?: ValidateOptions) => validateInventory(parseInventoryText(text, FILE), opts);
const problems = (text: string) => {
  try {
    spec(text);
  } catch (e) {
    assert.ok(e instanceof InventoryError);
    return e.problems;
  }
  assert.fail('expected an InventoryError');
};

describe('validateInventory: defaults', () => {
  it('fills every default for a minimal inventory', () => {
    const s = spec('[masters]\nmaster1 ansible_host=10.86.13.32\nmaster2 ansible_host=10.86.13.31\n[masters:vars]\nvip=10.86.13.36\n');
    assert.deepEqual(s, {
      file: FILE,
      group: 'masters',
      vip: '10.86.13.36',
      family: 4,
      vipPort: 8443,
      apiserverPort: 6443,
      virtualRouterId: 51,
      advertInt: 1,
      haproxyBalance: 'roundrobin',
      haproxyHealthCheck: 'readyz',
      haproxyCheckInter: 2,
      haproxyCheckFall: 3,
      haproxyCheckRise: 2,
      haproxyMonitorPort: 8404,
      vrrpPreempt: true,
      vrrpPreemptDelay: 0,
      vrrpCheckWeight: -11,
      kubeconfig: '/etc/kubernetes/admin.conf',
      hosts: [
        { name: 'master1', address: '10.86.13.32', port: 22, user: 'root', become: false, line: 2, priority: 150, sshExplicit: { address: true, port: false, user: false } },
        { name: 'master2', address: '10.86.13.31', port: 22, user: 'root', become: false, line: 3, priority: 140, sshExplicit: { address: true, port: false, user: false } },
      ],
      order: ['master1', 'master2'],
      primary: 'master1',
      primaryReason:
        'master1 is the primary: it has the highest priority (150; master2 has 140). In keepalived the highest priority holds the VIP. ' +
        'No master has a priority in the inventory: priorities not set in the inventory default to 150 for the first listed master, ' +
        'then 10 lower each (a default already used by another master moves down to the next free value).',
    });
  });

  it('uses the host name as address when ansible_host is absent, and reads every variable', () => {
    const s = spec(
      [
        '[masters]',
        'cp-1.example.com',
        '[masters:vars]',
        'vip=192.0.2.100',
        'vip_port=9443',
        'apiserver_port=7443',
        'virtual_router_id=7',
        'advert_int=3',
        'haproxy_balance=leastconn',
        'haproxy_health_check=tcp',
        'haproxy_check_inter=5',
        'haproxy_check_fall=4',
        'haproxy_check_rise=6',
        'haproxy_monitor_port=9404',
        'vrrp_preempt=yes',
        'vrrp_preempt_delay=120',
        'kubeconfig=/root/.kube/config',
        'vrrp_auth_pass=k8s-Ha1!'.replace('!', '_'),
        '[all:vars]',
        'ansible_user=deploy',
        'ansible_become=YES',
        'ansible_port=2222',
        'ansible_ssh_private_key_file=keys/id_ed25519',
      ].join('\n'),
    );
    assert.deepEqual(
      { ...s, primaryReason: undefined },
      {
        file: FILE,
        group: 'masters',
        vip: '192.0.2.100',
        family: 4,
        vipPort: 9443,
        apiserverPort: 7443,
        virtualRouterId: 7,
        advertInt: 3,
        haproxyBalance: 'leastconn',
        haproxyHealthCheck: 'tcp',
        haproxyCheckInter: 5,
        haproxyCheckFall: 4,
        haproxyCheckRise: 6,
        haproxyMonitorPort: 9404,
        vrrpPreempt: true,
        vrrpPreemptDelay: 120,
        vrrpCheckWeight: -1,
        kubeconfig: '/root/.kube/config',
        vrrpAuthPass: 'k8s-Ha1_',
        hosts: [
          {
            name: 'cp-1.example.com',
            address: 'cp-1.example.com',
            port: 2222,
            user: 'deploy',
            privateKeyFile: '/srv/inv/keys/id_ed25519',
            become: true,
            // No ansible_host: ssh_config's HostName may still say where to connect; port and user were set.
            sshExplicit: { address: false, port: true, user: true },
            line: 2,
            priority: 150,
          },
        ],
        order: ['cp-1.example.com'],
        primary: 'cp-1.example.com',
        primaryReason: undefined,
      },
    );
    assert.equal(
      s.primaryReason,
      'cp-1.example.com is the primary: it is the only master (priority 150). In keepalived the highest priority holds the VIP. ' +
        'No master has a priority in the inventory: priorities not set in the inventory default to 150 for the first listed master, ' +
        'then 10 lower each (a default already used by another master moves down to the next free value).',
    );
  });

  it('resolves ~/ in the key file against the home directory and keeps absolute paths', () => {
    const base = '[masters]\nm1 ansible_host=10.0.0.1 ansible_ssh_private_key_file=~/.ssh/id\nm2 ansible_host=10.0.0.2 ansible_ssh_private_key_file=/etc/k\n[masters:vars]\nvip=10.0.0.9\n';
    const s = spec(base, { homeDir: '/home/ops' });
    assert.deepEqual(s.hosts.map((h) => h.privateKeyFile), ['/home/ops/.ssh/id', '/etc/k']);
  });
});

describe('validateInventory: groups and precedence', () => {
  for (const group of ['masters', 'kube_master', 'kube_control_plane']) {
    it(`reads the masters from [${group}]`, () => {
      const s = spec(`[etcd]\n10.0.0.1\n[${group}]\n10.0.0.1\n10.0.0.2\n[${group}:vars]\nvip=10.0.0.9\n[kube_node]\n10.0.0.3\n`);
      assert.equal(s.group, group);
      assert.deepEqual(s.hosts.map((h) => [h.name, h.address, h.line]), [['10.0.0.1', '10.0.0.1', 4], ['10.0.0.2', '10.0.0.2', 5]]);
    });
  }

  it('host line > [masters:vars] > [all:vars] > defaults, per variable', () => {
    const s = spec(
      [
        '[masters]',
        'm1 ansible_host=10.0.0.1 ansible_port=2201 ansible_user=root',
        'm2 ansible_host=10.0.0.2',
        'm3 ansible_host=10.0.0.3 vip_interface=ens192',
        '[masters:vars]',
        'vip=10.0.0.9',
        'ansible_port=2200',
        'ansible_user=admin',
        'vip_interface=eth0',
        '[all:vars]',
        'ansible_port=2000',
        'ansible_user=nobody',
        'ansible_become=true',
        'virtual_router_id=99',
      ].join('\n'),
    );
    assert.deepEqual(
      s.hosts.map((h) => [h.name, h.port, h.user, h.become, h.vipInterface]),
      [
        ['m1', 2201, 'root', true, 'eth0'],
        ['m2', 2200, 'admin', true, 'eth0'],
        ['m3', 2200, 'admin', true, 'ens192'],
      ],
    );
    assert.equal(s.virtualRouterId, 99);
  });

  it('kubespray layout: host vars on [all] lines apply to the hosts listed under [kube_control_plane]', () => {
    const s = spec(
      [
        '[all]',
        'node1 ansible_host=192.0.2.11  # ip=10.3.0.1 etcd_member_name=etcd1',
        'node2 ansible_host=192.0.2.12 ip=10.3.0.2',
        'node3 ansible_host=192.0.2.13',
        '[kube_control_plane]',
        'node1',
        'node2 priority=200',
        '[etcd]',
        'node1',
        '[kube_node]',
        'node3',
        '[k8s_cluster:children]',
        'kube_control_plane',
        'kube_node',
        '[k8s_cluster:vars]',
        'vip_port=1',
        '[all:vars]',
        'vip=192.0.2.100',
      ].join('\n'),
    );
    assert.equal(s.group, 'kube_control_plane');
    assert.deepEqual(s.hosts.map((h) => [h.name, h.address, h.line, h.priority]), [['node1', '192.0.2.11', 6, 150], ['node2', '192.0.2.12', 7, 200]]);
    assert.equal(s.vipPort, 1, '[k8s_cluster:vars] applies: kube_control_plane is its child');
    assert.deepEqual(s.order, ['node2', 'node1']);
  });

  it('one level of [masters:children]: child hosts become masters, child vars rank between host line and [masters:vars]', () => {
    const s = spec(
      [
        '[masters]',
        'm1 ansible_host=10.0.0.1',
        '[masters:children]',
        'rack_b',
        '[rack_b]',
        'm2 ansible_host=10.0.0.2',
        'm3 ansible_host=10.0.0.3 vip_interface=bond0',
        '[rack_b:vars]',
        'vip_interface=eth1',
        '[masters:vars]',
        'vip=10.0.0.9',
        'vip_interface=eth0',
      ].join('\n'),
    );
    assert.deepEqual(s.hosts.map((h) => [h.name, h.vipInterface, h.priority]), [['m1', 'eth0', 150], ['m2', 'eth1', 140], ['m3', 'bond0', 130]]);
  });

  it('reads the ssh aliases ansible_ssh_host/port/user and ansible_private_key_file', () => {
    const s = spec('[masters]\nm1 ansible_ssh_host=10.0.0.1 ansible_ssh_port=2222\n[masters:vars]\nvip=10.0.0.9\n[all:vars]\nansible_ssh_user=ops\nansible_become=1\nansible_private_key_file=/k\n');
    assert.deepEqual(s.hosts.map((h) => [h.address, h.port, h.user, h.become, h.privateKeyFile]), [['10.0.0.1', 2222, 'ops', true, '/k']]);
  });

  it('accepts identical cluster-wide values on every host line', () => {
    const s = spec('[masters]\nm1 ansible_host=10.0.0.1 vip=10.0.0.9 virtual_router_id=9\nm2 ansible_host=10.0.0.2 vip=10.0.0.9 virtual_router_id=9\n');
    assert.deepEqual([s.vip, s.virtualRouterId], ['10.0.0.9', 9]);
  });
});

describe('validateInventory: priorities, order and primary', () => {
  it('the highest priority is the primary; order follows descending priority', () => {
    const s = spec('[masters]\nm1 ansible_host=10.0.0.1 priority=100\nm2 ansible_host=10.0.0.2 priority=120\nm3 ansible_host=10.0.0.3 priority=110\n[masters:vars]\nvip=10.0.0.9\n');
    assert.equal(s.primary, 'm2');
    assert.deepEqual(s.order, ['m2', 'm3', 'm1']);
    assert.equal(
      s.primaryReason,
      'm2 is the primary: it has the highest priority (120; m3 has 110, m1 100). In keepalived the highest priority holds the VIP.',
    );
  });

  it('names the masters whose priority was defaulted', () => {
    const s = spec('[masters]\nm1 ansible_host=10.0.0.1\nm2 ansible_host=10.0.0.2 priority=150\nm3 ansible_host=10.0.0.3\n[masters:vars]\nvip=10.0.0.9\n');
    assert.deepEqual(s.hosts.map((h) => h.priority), [149, 150, 130]);
    assert.deepEqual(s.order, ['m2', 'm1', 'm3']);
    assert.equal(
      s.primaryReason,
      'm2 is the primary: it has the highest priority (150; m1 has 149, m3 130). In keepalived the highest priority holds the VIP. ' +
        'm1, m3 have no priority in the inventory: priorities not set in the inventory default to 150 for the first listed master, ' +
        'then 10 lower each (a default already used by another master moves down to the next free value).',
    );
  });

  it('assignPriorities: 150 - 10*position, taken values move down, then up when nothing is free below', () => {
    assert.deepEqual(assignPriorities([undefined, undefined, undefined]), [150, 140, 130]);
    assert.deepEqual(assignPriorities([undefined, 140, undefined]), [150, 140, 130]);
    assert.deepEqual(assignPriorities([200, undefined, undefined]), [200, 140, 130]);
    assert.deepEqual(assignPriorities([undefined, 150, 149, undefined]), [148, 150, 149, 120]);
    assert.deepEqual(assignPriorities([1, ...Array(15).fill(undefined)]).slice(13), [20, 10, 2]);
    assert.deepEqual(assignPriorities([1, 2, undefined, ...Array(14).fill(undefined)]).slice(14), [10, 3, 4]);
  });
});

describe('validateInventory: failover settings', () => {
  const three = (prio: [number | '', number | '', number | ''], vars = '') =>
    `[masters]\n${prio.map((p, i) => `m${i + 1} ansible_host=10.0.0.${i + 1}${p === '' ? '' : ` priority=${p}`}`).join('\n')}\n[masters:vars]\nvip=10.0.0.9\n${vars}`;

  it('the check weight puts a failed primary below the lowest backup, the same on every master', () => {
    const s = spec(three([150, 140, 130]));
    assert.equal(s.vrrpCheckWeight, -21);
    assert.ok(150 + s.vrrpCheckWeight < 130, 'failed primary below the lowest healthy backup');
    assert.ok(130 + s.vrrpCheckWeight >= 1, 'every failed priority stays valid');
    assert.equal(spec(three([254, 140, 128])).vrrpCheckWeight, -127);
    assert.equal(spec('[masters]\nm1 ansible_host=10.0.0.1 priority=2\n[masters:vars]\nvip=10.0.0.9\n').vrrpCheckWeight, -1);
  });

  it('refuses priorities so far apart that a failed master would go below 1, naming the values, with a hint', () => {
    assert.deepEqual(problems(three([200, 140, 100])), [
      {
        line: 4,
        variable: 'priority',
        message:
          "m3's priority 100 is too far below m1's 200: a master whose local load balancer check fails loses 101 (highest minus lowest priority, plus 1, " +
          'so that a failed primary falls below every healthy backup), which leaves m3 at -1; keepalived needs at least 1',
        hint: 'keep the priorities closer together: the highest may be at most twice the lowest minus 2 (here: m3 at least 101, or m1 at most 198); e.g. 150, 140, 130',
      },
    ]);
    assert.equal(spec(three([198, 140, 100])).vrrpCheckWeight, -99, 'the bound of the hint is accepted');
    assert.equal(problems('[masters]\nm1 ansible_host=10.0.0.1 priority=1\n[masters:vars]\nvip=10.0.0.9\n')[0]!.message.includes('leaves m1 at 0'), true);
  });

  it('names a defaulted priority as such, on the host line', () => {
    const hosts = Array.from({ length: 9 }, (_, i) => `m${i + 1} ansible_host=10.0.0.${i + 1}`).join('\n');
    const p = problems(`[masters]\n${hosts}\n[masters:vars]\nvip=10.0.0.99\n`);
    assert.deepEqual(p.map((x) => [x.line, x.variable]), [[9, 'priority'], [10, 'priority']]);
    assert.match(p[0]!.message, /^m8's priority 80 \(a default\) is too far below m1's 150: .* which leaves m8 at -1;/);
    assert.match(p[1]!.message, /^m9's priority 70 \(a default\) is too far below m1's 150/);
  });

  it('vrrp_preempt=false: nopreempt, for the gates too (any one holder)', () => {
    const s = spec(three([150, 140, 130], 'vrrp_preempt=false\n'));
    assert.equal(s.vrrpPreempt, false);
    assert.equal(s.vrrpPreemptDelay, 0);
  });

  it('refuses vrrp_preempt=false together with vrrp_preempt_delay', () => {
    assert.deepEqual(problems(three([150, 140, 130], 'vrrp_preempt=false\nvrrp_preempt_delay=30\n')), [
      {
        line: 8,
        variable: 'vrrp_preempt_delay',
        message: 'vrrp_preempt_delay=30 cannot be combined with vrrp_preempt=false (line 7): without preemption a returning master never takes the VIP back, so there is nothing to delay',
        hint: 'remove one: vrrp_preempt=false (the VIP stays where it is after a failover) or vrrp_preempt_delay=SECONDS (the primary takes it back after that delay)',
      },
    ]);
  });

  it('refuses haproxy_monitor_port equal to vip_port or apiserver_port', () => {
    assert.deepEqual(
      problems(three([150, 140, 130], 'haproxy_monitor_port=8443\n')).map((p) => [p.line, p.variable, p.message]),
      [[7, 'haproxy_monitor_port', "haproxy_monitor_port and vip_port are both 8443: haproxy's monitor (127.0.0.1:8443) needs a port of its own on every master"]],
    );
    assert.match(problems(three([150, 140, 130], 'haproxy_monitor_port=6443\n'))[0]!.message, /haproxy_monitor_port and apiserver_port are both 6443/);
    const moved = problems(three([150, 140, 130], 'vip_port=8404\n'));
    assert.deepEqual(moved.map((p) => [p.line, p.variable]), [[7, 'vip_port']]);
    assert.match(moved[0]!.hint!, /set haproxy_monitor_port to a free port other than vip_port/);
  });

  it('every new variable must be identical on all masters', () => {
    for (const [k, v] of [['haproxy_health_check', 'tcp'], ['haproxy_check_inter', '5'], ['haproxy_check_fall', '5'], ['haproxy_check_rise', '5'], ['haproxy_monitor_port', '9404'], ['vrrp_preempt', 'false'], ['vrrp_preempt_delay', '10']]) {
      const p = problems(`[masters]\nm1 ansible_host=10.0.0.1 ${k}=${v}\nm2 ansible_host=10.0.0.2\n[masters:vars]\nvip=10.0.0.9\n`);
      assert.deepEqual(p.map((x) => [x.line, x.variable]), [[2, k]], k);
      assert.match(p[0]!.message, new RegExp(`^${k} must be identical on all masters: .* \\(m1 has "${v}", m2 has the default `), k);
    }
  });
});

describe('typo suggestions', () => {
  it('suggests our variable for a near miss and leaves other tools alone', () => {
    assert.equal(editDistance('vip_prot', 'vip_port'), 1);
    assert.deepEqual(suggestVariable('vip_prot'), ['vip_port']);
    assert.deepEqual(suggestVariable('VIP'), ['vip']);
    assert.deepEqual(suggestVariable('prority'), ['priority']);
    assert.deepEqual(suggestVariable('virtual_routerid'), ['virtual_router_id']);
    assert.deepEqual(suggestVariable('kube_config'), ['kubeconfig']);
    assert.deepEqual(suggestVariable('vrrp_authpass'), ['vrrp_auth_pass']);
    assert.deepEqual(suggestVariable('ansible_hots'), ['ansible_host']);
    assert.deepEqual(suggestVariable('haproxy_healthcheck'), ['haproxy_health_check']);
    assert.deepEqual(suggestVariable('haproxy_check_intr'), ['haproxy_check_inter']);
    assert.deepEqual(suggestVariable('haproxy_check_fal'), ['haproxy_check_fall']);
    assert.deepEqual(suggestVariable('haproxy_check_raise'), ['haproxy_check_rise']);
    assert.deepEqual(suggestVariable('haproxy_monitor_prot'), ['haproxy_monitor_port']);
    assert.deepEqual(suggestVariable('vrrp_premept'), ['vrrp_preempt']);
    assert.deepEqual(suggestVariable('vrrp_preempt_dealy'), ['vrrp_preempt_delay']);
    for (const other of ['ip', 'access_ip', 'etcd_data_dir', 'ansible_python_interpreter', 'CLUSTER_NAME', 'k8s_nodename', 'ansible_password', 'ansible_become_pass', 'bin_dir', 'vip', 'ansible_ssh_user'])
      assert.deepEqual(suggestVariable(other), [], other);
  });

  it('refuses the inventory, naming line, variable and suggestion', () => {
    assert.deepEqual(problems('[masters]\nm1 ansible_host=10.0.0.1\n[masters:vars]\nvip=10.0.0.9\nvip_prot=9443\n'), [
      { line: 5, variable: 'vip_prot', message: 'unknown variable vip_prot: did you mean vip_port?', hint: 'rename it to vip_port' },
    ]);
  });

  it('ignores typo-like variables of groups kha-deploy does not read', () => {
    const s = spec('[masters]\nm1 ansible_host=10.0.0.1\n[masters:vars]\nvip=10.0.0.9\n[etcd]\nx1\n[etcd:vars]\nvip_prot=1\n');
    assert.equal(s.vipPort, 8443);
  });
});

describe('inventories/example.ini', () => {
  it('loads and validates', async () => {
    const path = fileURLToPath(new URL('../../inventories/example.ini', import.meta.url));
    const s = await loadInventory(path);
    assert.equal(s.file, path);
    assert.deepEqual([s.group, s.vip, s.family, s.vipPort, s.apiserverPort, s.virtualRouterId], ['masters', '192.0.2.100', 4, 8443, 6443, 51]);
    assert.deepEqual(s.hosts.map((h) => [h.name, h.address, h.priority]), [['master1', '192.0.2.11', 150], ['master2', '192.0.2.12', 140], ['master3', '192.0.2.13', 130]]);
    assert.deepEqual(s.order, ['master1', 'master2', 'master3']);
    assert.equal(s.primaryReason, 'master1 is the primary: it has the highest priority (150; master2 has 140, master3 130). In keepalived the highest priority holds the VIP.');
  });
});
