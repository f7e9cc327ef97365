// Every row is an inventory that must be refused before any host is contacted: InventoryError,
// exit code 2, and a problem naming the expected line and variable with a matching message.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { InventoryError } from '../../src/errors.js';
import { loadInventory } from '../../src/inventory/load.js';

interface Row {
  name: string;
  /** Inventory text, or raw bytes; `null` = do not create the file. */
  content: string | Buffer | null;
  line: number | undefined;
  variable: string | undefined;
  message: RegExp;
  hint?: RegExp;
  /** Must appear nowhere in the error. */
  secret?: string;
}

const M2 = 'm2 ansible_host=10.0.0.2';
/** Masters group with two hosts (lines 2-3), then [masters:vars] at line 4 and vip at line 5. */
const inv = (host1: string, extraVars = '', vip = '10.0.0.9') => `[masters]\n${host1}\n${M2}\n[masters:vars]\nvip=${vip}\n${extraVars}`;
const h1 = (vars: string) => inv(`m1 ansible_host=10.0.0.1 ${vars}`);
/** Variable set on line 6, in [masters:vars]. */
const gv = (line: string) => inv('m1 ansible_host=10.0.0.1', line + '\n');

const rows: Row[] = [
  // Host names.
  { name: 'host name with ;', content: inv('m1;reboot ansible_host=10.0.0.1'), line: 2, variable: 'm1;reboot', message: /host name "m1;reboot" is invalid/ },
  { name: 'host name with $(…)', content: inv('$(reboot) ansible_host=10.0.0.1'), line: 2, variable: '$(reboot)', message: /host name "\$\(reboot\)" is invalid/ },
  { name: 'host name with backticks', content: inv('`id` ansible_host=10.0.0.1'), line: 2, variable: '`id`', message: /host name "`id`" is invalid/ },
  { name: 'host name starting with -', content: inv('-oProxyCommand ansible_host=10.0.0.1'), line: 2, variable: '-oProxyCommand', message: /host name .* is invalid/ },
  { name: 'host name with braces', content: inv('m{1} ansible_host=10.0.0.1'), line: 2, variable: 'm{1}', message: /host name "m\{1\}" is invalid/ },
  { name: 'host range with unequal widths', content: inv('master[01:3]'), line: 2, variable: 'master[01:3]', message: /host range \[01:3\] must specify equal-length begin and end formats/ },
  { name: 'host range without end', content: inv('master[1:]'), line: 2, variable: 'master[1:]', message: /must specify an end value/ },
  { name: 'host pattern ending in :', content: inv('m1:'), line: 2, variable: 'm1:', message: /what follows ':' must be a port number/ },
  { name: 'bad IPv4-looking host name', content: inv('10.0.0.300'), line: 2, variable: '10.0.0.300', message: /looks like an IPv4 address but is not a valid one/ },
  { name: 'one host listed twice with two addresses', content: inv('m2 ansible_host=10.0.0.1'), line: 3, variable: 'ansible_host', message: /ansible_host set more than once for host m2 with different values \(lines 2, 3\)/ },
  // Groups.
  { name: 'unknown group only', content: '[workers]\nw1 ansible_host=10.0.0.5\n[workers:vars]\nvip=10.0.0.9\n', line: undefined, variable: 'masters', message: /^no masters group: expected \[masters\], \[kube_master\], \[kube-master\] or \[kube_control_plane\] \(found \[workers\]\)$/ },
  { name: 'empty masters group', content: '[masters]\n\n[masters:vars]\nvip=10.0.0.9\n', line: 1, variable: 'masters', message: /\[masters\] has no hosts/ },
  { name: 'two masters groups', content: '[masters]\nm1\n[kube_control_plane]\nm2\n', line: 3, variable: 'kube_control_plane', message: /both \[masters\] \(line 1\) and \[kube_control_plane\] \(line 3\) are present/ },
  { name: 'children in a loop', content: inv('m1 ansible_host=10.0.0.1', '[masters:children]\nrack\n[rack:children]\nmasters\n'), line: 1, variable: 'masters', message: /group masters is its own ancestor through :children: a loop/ },
  { name: 'children naming a missing group', content: inv('m1 ansible_host=10.0.0.1', '[masters:children]\nghost\n'), line: 7, variable: 'ghost', message: /names group ghost, which is not defined/ },
  // Syntax.
  { name: 'malformed section header', content: '[masters\nm1\n', line: 1, variable: undefined, message: /malformed section header/ },
  { name: 'unterminated quote', content: h1('vip_interface="eth0'), line: 2, variable: 'm1', message: /unterminated double quote/ },
  { name: 'real carriage return inside a quoted value', content: h1('vip_interface="eth0\rup"'), line: 2, variable: 'm1', message: /unterminated double quote/ },
  { name: 'variable in the host list', content: '[masters]\nvip=10.0.0.9\nm1\n', line: 2, variable: 'vip', message: /lines here must start with a host name/ },
  // VIP.
  { name: 'missing vip', content: '[masters]\nm1 ansible_host=10.0.0.1\n[masters:vars]\nvip_port=8443\n', line: 3, variable: 'vip', message: /vip is not set/ },
  { name: 'vip only in another group', content: '[masters]\nm1 ansible_host=10.0.0.1\n[etcd]\nm9\n[etcd:vars]\nvip=10.0.0.9\n', line: 1, variable: 'vip', message: /vip is not set/, hint: /\[etcd:vars\] \(line 6\)/ },
  { name: 'vars for a group never defined', content: '[masters]\nm1 ansible_host=10.0.0.1\n[etcd:vars]\nvip=10.0.0.9\n', line: 3, variable: 'etcd', message: /\[etcd:vars\] names group etcd, which is not defined/ },
  { name: 'a comment after an unquoted [vars] value is part of it, as in Ansible', content: inv('m1 ansible_host=10.0.0.1', '', '10.0.0.9   # the VIP'), line: 5, variable: 'vip', message: /vip "10\.0\.0\.9   # the VIP" is not a valid IP address/, hint: /quote the value or put the comment on its own line/ },
  { name: 'vip octet out of range', content: inv('m1 ansible_host=10.0.0.1', '', '10.0.0.256'), line: 5, variable: 'vip', message: /vip "10\.0\.0\.256" is not a valid IP address/ },
  { name: 'vip with leading zero', content: inv('m1 ansible_host=10.0.0.1', '', '10.0.0.010'), line: 5, variable: 'vip', message: /vip "10\.0\.0\.010" is not a valid IP address/ },
  { name: 'vip with $(…)', content: inv('m1 ansible_host=10.0.0.1', '', '$(reboot)'), line: 5, variable: 'vip', message: /not a valid IP address/ },
  { name: 'vip with IPv6 zone', content: inv('m1 ansible_host=fe80::1', '', 'fe80::9%eth0'), line: 5, variable: 'vip', message: /not a valid IP address/ },
  { name: 'vip multicast', content: inv('m1 ansible_host=10.0.0.1', '', '224.0.0.18'), line: 5, variable: 'vip', message: /224\.0\.0\.18 is a multicast address/ },
  { name: 'vip unspecified IPv6', content: '[masters]\nm1 ansible_host=2001:db8::1\n[masters:vars]\nvip=::\n', line: 4, variable: 'vip', message: /:: is the unspecified address/ },
  { name: 'vip equal to a master address', content: inv('m1 ansible_host=10.0.0.1', '', '10.0.0.2'), line: 5, variable: 'vip', message: /vip 10\.0\.0\.2 is also the address of m2/ },
  { name: 'vip equal to an IPv6 master written differently', content: '[masters]\nm1 ansible_host=2001:DB8:0::1\n[masters:vars]\nvip=2001:db8::1\n', line: 4, variable: 'vip', message: /is also the address of m1/ },
  { name: 'IPv4 vip, IPv6 master', content: h1('').replace('10.0.0.1', '2001:db8::1'), line: 2, variable: 'ansible_host', message: /m1's address 2001:db8::1 is IPv6 but the VIP 10\.0\.0\.9 is IPv4/ },
  { name: 'IPv6 vip, IPv4 master', content: '[masters]\nm1 ansible_host=2001:db8::1\nm2 ansible_host=10.0.0.2\n[all:vars]\nvip=2001:db8::9\n', line: 3, variable: 'ansible_host', message: /is IPv4 but the VIP 2001:db8::9 is IPv6/ },
  // Addresses.
  { name: 'ansible_host with ;', content: h1('').replace('10.0.0.1', '"10.0.0.1;reboot"'), line: 2, variable: 'ansible_host', message: /"10\.0\.0\.1;reboot" is neither an IP address nor a valid DNS host name/ },
  { name: 'ansible_host with \\n escape', content: h1('').replace('10.0.0.1', '"cp1\\nreboot"'), line: 2, variable: 'ansible_host', message: /"cp1\\\\nreboot" is neither an IP address nor a valid DNS host name/ },
  { name: 'ansible_host with underscore', content: h1('').replace('10.0.0.1', 'cp_1.example.com'), line: 2, variable: 'ansible_host', message: /neither an IP address nor a valid DNS host name/ },
  { name: 'ansible_host with port', content: h1('').replace('10.0.0.1', '10.0.0.1:22'), line: 2, variable: 'ansible_host', message: /"10\.0\.0\.1:22" is not a valid IP address/ },
  { name: 'two masters on one address', content: h1('').replace('10.0.0.1', '10.0.0.2'), line: 3, variable: 'ansible_host', message: /m2 has the same address and SSH port as m1/ },
  // Priorities.
  { name: 'duplicate priorities', content: inv('m1 ansible_host=10.0.0.1 priority=120').replace(M2, `${M2} priority=120`), line: 3, variable: 'priority', message: /priority 120 is used by both m1 and m2/ },
  { name: 'one priority for all masters', content: gv('priority=100'), line: 6, variable: 'priority', message: /priority 100 is set in \[masters:vars\] \(line 6\), so every master gets it/, hint: /each host line/ },
  { name: 'priority 0', content: h1('priority=0'), line: 2, variable: 'priority', message: /priority must be an integer from 1 to 254, got 0/ },
  { name: 'priority 255', content: h1('priority=255'), line: 2, variable: 'priority', message: /from 1 to 254, got 255/ },
  { name: 'priority in hex', content: h1('priority=0x96'), line: 2, variable: 'priority', message: /written in decimal digits, got "0x96"/ },
  { name: 'priority negative', content: h1('priority=-5'), line: 2, variable: 'priority', message: /decimal digits, got "-5"/ },
  // Numbers and ports.
  { name: 'VRID 256', content: gv('virtual_router_id=256'), line: 6, variable: 'virtual_router_id', message: /virtual_router_id must be an integer from 1 to 255, got 256/ },
  { name: 'VRID 0', content: gv('virtual_router_id=0'), line: 6, variable: 'virtual_router_id', message: /from 1 to 255, got 0/ },
  { name: 'advert_int 0', content: gv('advert_int=0'), line: 6, variable: 'advert_int', message: /advert_int must be an integer from 1 to 255/ },
  { name: 'advert_int fractional', content: gv('advert_int=0.5'), line: 6, variable: 'advert_int', message: /decimal digits, got "0\.5"/ },
  { name: 'vip_port 65536', content: gv('vip_port=65536'), line: 6, variable: 'vip_port', message: /vip_port must be an integer from 1 to 65535, got 65536/ },
  { name: 'vip_port with leading zero', content: gv('vip_port=08443'), line: 6, variable: 'vip_port', message: /decimal digits, got "08443"/ },
  { name: 'vip_port with spaces', content: gv('vip_port="84 43"'), line: 6, variable: 'vip_port', message: /got "84 43"/ },
  { name: 'ansible_port text', content: h1('ansible_port=ssh'), line: 2, variable: 'ansible_port', message: /ansible_port must be an integer from 1 to 65535/ },
  { name: 'vip_port == apiserver_port', content: gv('vip_port=6443'), line: 6, variable: 'vip_port', message: /vip_port and apiserver_port are both 6443/ },
  { name: 'apiserver_port == default vip_port', content: gv('apiserver_port=8443'), line: 6, variable: 'apiserver_port', message: /both 8443/ },
  // Connection.
  { name: 'non-root without become', content: gv('ansible_user=deploy'), line: 6, variable: 'ansible_user', message: /ansible_user deploy is not root and ansible_become is not true/, hint: /set ansible_become=true/ },
  { name: 'non-root with become=false', content: gv('ansible_user=deploy\nansible_become=no'), line: 6, variable: 'ansible_user', message: /not root/, hint: /set ansible_become=true/ },
  { name: 'become not a boolean', content: gv('ansible_become=maybe'), line: 6, variable: 'ansible_become', message: /ansible_become must be true or false/ },
  { name: 'become_user not root', content: gv('ansible_become=true\nansible_become_user=postgres'), line: 7, variable: 'ansible_become_user', message: /must be root \(or unset\)/ },
  { name: 'user with $(…)', content: h1('ansible_user=$(id)'), line: 2, variable: 'ansible_user', message: /ansible_user "\$\(id\)" is not a valid user name/ },
  { name: 'alias conflict in one section', content: gv('ansible_user=root\nansible_ssh_user=deploy'), line: 7, variable: 'ansible_ssh_user', message: /^ansible_user="root" \(line 6\) and ansible_ssh_user="deploy" \(line 7\) disagree: kha-deploy reads both as ansible_user$/ },
  { name: 'alias conflict across sections', content: h1('ansible_ssh_host=10.0.0.7'), line: 2, variable: 'ansible_ssh_host', message: /ansible_host="10\.0\.0\.1" \(line 2\) and ansible_ssh_host="10\.0\.0\.7" \(line 2\) disagree/ },
  { name: 'same key twice in one section', content: gv('vip_port=9443\nvip_port=9444'), line: 7, variable: 'vip_port', message: /vip_port set more than once in \[masters:vars\] with different values \(lines 6, 7\)/ },
  { name: 'same host, two addresses', content: `[all]\nm1 ansible_host=10.0.0.5\n${h1('')}`.replace('[masters]', '[masters]'), line: 4, variable: 'ansible_host', message: /set more than once for host m1 with different values \(lines 2, 4\)/ },
  // Paths.
  { name: 'key file with ;', content: h1('ansible_ssh_private_key_file="id;reboot"'), line: 2, variable: 'ansible_ssh_private_key_file', message: /"id;reboot" contains characters not allowed in a path/ },
  { name: 'key file with backticks', content: h1('ansible_ssh_private_key_file=`id`'), line: 2, variable: 'ansible_ssh_private_key_file', message: /contains characters not allowed/ },
  { name: 'key file of another user', content: h1('ansible_ssh_private_key_file=~bob/.ssh/id'), line: 2, variable: 'ansible_ssh_private_key_file', message: /only ~\/ .* is expanded/ },
  { name: 'key file missing', content: h1('ansible_ssh_private_key_file=keys/nope'), line: 2, variable: 'ansible_ssh_private_key_file', message: /"keys\/nope" does not exist \(looked for \/.*\/keys\/nope\)/ },
  { name: 'kubeconfig relative', content: gv('kubeconfig=admin.conf'), line: 6, variable: 'kubeconfig', message: /kubeconfig must be an absolute path/ },
  { name: 'kubeconfig with $(…)', content: gv('kubeconfig=/etc/$(reboot)'), line: 6, variable: 'kubeconfig', message: /contains characters not allowed in a path/ },
  { name: 'kubeconfig with | and >', content: gv('kubeconfig="/etc/k|tee>/x"'), line: 6, variable: 'kubeconfig', message: /contains characters not allowed/ },
  { name: 'kubeconfig referring to an unset variable', content: gv('kubeconfig="{{ base_dir }}/admin.conf"'), line: 6, variable: 'kubeconfig', message: /kubeconfig refers to \{\{ base_dir \}\}, which is not set for this host/ },
  { name: 'kubeconfig Jinja filter', content: gv('kubeconfig="{{ base_dir | default(\'/etc\') }}/admin.conf"\nbase_dir=/etc'), line: 6, variable: 'kubeconfig', message: /kubeconfig is a Jinja template kha-deploy cannot expand .*only plain \{\{ VARIABLE \}\} references/ },
  { name: 'kubeconfig expanding to a relative path', content: gv('kubeconfig="{{ base_dir }}/admin.conf"\nbase_dir=etc'), line: 6, variable: 'kubeconfig', message: /kubeconfig must be an absolute path .*got "etc\/admin\.conf"/ },
  // Interfaces and injection.
  { name: 'interface with ;', content: h1('vip_interface="eth0;reboot"'), line: 2, variable: 'vip_interface', message: /vip_interface "eth0;reboot" is not a valid interface name/ },
  { name: 'interface with /', content: h1('vip_interface=eth0/1'), line: 2, variable: 'vip_interface', message: /not a valid interface name/ },
  { name: 'interface with space', content: h1("vip_interface='eth0 up'"), line: 2, variable: 'vip_interface', message: /"eth0 up" is not a valid interface name/ },
  { name: 'interface too long', content: h1('vip_interface=enp0s31f6abcdefgh'), line: 2, variable: 'vip_interface', message: /not a valid interface name: 1-15/ },
  { name: 'interface with brace', content: h1('vip_interface=eth0}'), line: 2, variable: 'vip_interface', message: /"eth0}" is not a valid interface name/ },
  { name: 'interface with # injection', content: h1('vip_interface=eth0#x'), line: 2, variable: 'vip_interface', message: /"eth0#x" is not a valid interface name/ },
  { name: 'interface with \\n escape', content: h1('vip_interface="eth0\\nvirtual_ipaddress"'), line: 2, variable: 'vip_interface', message: /not a valid interface name/ },
  { name: 'haproxy_balance unknown', content: gv('haproxy_balance=random'), line: 6, variable: 'haproxy_balance', message: /must be one of roundrobin, leastconn, static-rr, first, source, got "random"/ },
  { name: 'haproxy_balance injection', content: gv('haproxy_balance="roundrobin\\n    server evil"'), line: 6, variable: 'haproxy_balance', message: /must be one of/ },
  // Health checks and failover.
  { name: 'haproxy_health_check unknown', content: gv('haproxy_health_check=http'), line: 6, variable: 'haproxy_health_check', message: /haproxy_health_check must be readyz \(GET \/readyz over TLS\) or tcp \(a TCP connect only\), got "http"/ },
  { name: 'haproxy_check_inter with a unit', content: gv('haproxy_check_inter=2s'), line: 6, variable: 'haproxy_check_inter', message: /haproxy_check_inter must be an integer from 1 to 3600 written in decimal digits, got "2s"/, hint: /seconds without a unit, e\.g\. 2/ },
  { name: 'haproxy_check_inter 0', content: gv('haproxy_check_inter=0'), line: 6, variable: 'haproxy_check_inter', message: /from 1 to 3600, got 0/ },
  { name: 'haproxy_check_fall 0', content: gv('haproxy_check_fall=0'), line: 6, variable: 'haproxy_check_fall', message: /haproxy_check_fall must be an integer from 1 to 100, got 0/ },
  { name: 'haproxy_check_rise injection', content: gv('haproxy_check_rise="2 backup"'), line: 6, variable: 'haproxy_check_rise', message: /decimal digits, got "2 backup"/ },
  { name: 'haproxy_monitor_port 0', content: gv('haproxy_monitor_port=0'), line: 6, variable: 'haproxy_monitor_port', message: /haproxy_monitor_port must be an integer from 1 to 65535, got 0/ },
  { name: 'haproxy_monitor_port == vip_port', content: gv('haproxy_monitor_port=8443'), line: 6, variable: 'haproxy_monitor_port', message: /haproxy_monitor_port and vip_port are both 8443/ },
  { name: 'vrrp_preempt not a boolean', content: gv('vrrp_preempt=sometimes'), line: 6, variable: 'vrrp_preempt', message: /vrrp_preempt must be true or false/ },
  { name: 'vrrp_preempt_delay too long', content: gv('vrrp_preempt_delay=1001'), line: 6, variable: 'vrrp_preempt_delay', message: /vrrp_preempt_delay must be an integer from 0 to 1000, got 1001/ },
  { name: 'nopreempt with a preempt delay', content: gv('vrrp_preempt=no\nvrrp_preempt_delay=60'), line: 7, variable: 'vrrp_preempt_delay', message: /cannot be combined with vrrp_preempt=no \(line 6\)/ },
  { name: 'priorities too far apart', content: inv('m1 ansible_host=10.0.0.1 priority=250').replace(M2, `${M2} priority=100`), line: 3, variable: 'priority', message: /m2's priority 100 is too far below m1's 250: .* which leaves m2 at -51; keepalived needs at least 1/, hint: /m2 at least 126, or m1 at most 198/ },
  { name: 'typo haproxy_healthcheck', content: gv('haproxy_healthcheck=tcp'), line: 6, variable: 'haproxy_healthcheck', message: /did you mean haproxy_health_check\?/ },
  // Cluster-wide values must agree.
  { name: 'VRID differs on a host line', content: h1('virtual_router_id=52'), line: 2, variable: 'virtual_router_id', message: /virtual_router_id must be identical on all masters: keepalived instances that disagree produce 'bogus VRRP packet' \(m1 has "52", m2 has the default 51\)/ },
  { name: 'vip differs on a host line', content: h1('vip=10.0.0.8'), line: 2, variable: 'vip', message: /vip must be identical on all masters/ },
  // Typos.
  { name: 'typo vip_prot', content: gv('vip_prot=9443'), line: 6, variable: 'vip_prot', message: /^unknown variable vip_prot: did you mean vip_port\?$/ },
  { name: 'typo on a host line', content: h1('prioirty=120'), line: 2, variable: 'prioirty', message: /did you mean priority\?/ },
  { name: 'typo in [all:vars]', content: gv('[all:vars]\nansible_usr=root'), line: 7, variable: 'ansible_usr', message: /did you mean ansible_user\?/ },
  { name: 'typo by case', content: gv('VIP_PORT=9443'), line: 6, variable: 'VIP_PORT', message: /did you mean vip_port\?/ },
  // Secret.
  { name: 'vrrp_auth_pass too long', content: gv('vrrp_auth_pass=TopSecret99'), line: 6, variable: 'vrrp_auth_pass', message: /^vrrp_auth_pass is invalid \(value hidden\)/, secret: 'TopSecret99' },
  { name: 'vrrp_auth_pass with #', content: gv('vrrp_auth_pass=ab#cdef'), line: 6, variable: 'vrrp_auth_pass', message: /value hidden/, secret: 'ab#cdef' },
  { name: 'vrrp_auth_pass with brace', content: gv('vrrp_auth_pass="pa}ss"'), line: 6, variable: 'vrrp_auth_pass', message: /value hidden/, secret: 'pa}ss' },
  { name: 'vrrp_auth_pass with an IPv6 VIP', content: `[masters]\nm1 ansible_host=fd00::1\nm2 ansible_host=fd00::2\n[masters:vars]\nvip=fd00::9\nvrrp_auth_pass=Secr3t`, line: 6, variable: 'vrrp_auth_pass', message: /cannot be used with an IPv6 VIP/, secret: 'Secr3t' },
  { name: 'vrrp_auth_pass empty', content: gv('vrrp_auth_pass='), line: 6, variable: 'vrrp_auth_pass', message: /value hidden/ },
  { name: 'vrrp_auth_pass differs', content: h1('vrrp_auth_pass=Hunter22').replace(M2, `${M2} vrrp_auth_pass=Zebra777`), line: 3, variable: 'vrrp_auth_pass', message: /must be identical on all masters.*values hidden/, secret: 'Zebra777' },
  { name: 'vrrp_auth_pass typo', content: gv('vrrp_auth_pas=Hunter22'), line: 6, variable: 'vrrp_auth_pas', message: /did you mean vrrp_auth_pass\?/, secret: 'Hunter22' },
  // Files.
  { name: 'empty file', content: '', line: undefined, variable: undefined, message: /^inventory file is empty$/ },
  { name: 'whitespace-only file', content: '\n  \n\t\n', line: undefined, variable: undefined, message: /^inventory file is empty$/ },
  { name: 'comments only', content: '# nothing here\n', line: undefined, variable: 'masters', message: /no masters group/ },
  { name: 'binary file', content: Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03]), line: undefined, variable: undefined, message: /contains NUL bytes: it is a binary file/ },
  { name: 'invalid UTF-8', content: Buffer.from([0x5b, 0x6d, 0x5d, 0x0a, 0xff, 0xfe, 0x0a]), line: undefined, variable: undefined, message: /not valid UTF-8/ },
  { name: '10 MB file', content: Buffer.alloc(10 * 1024 * 1024, '# padding\n'), line: undefined, variable: undefined, message: /^inventory file is 10\.0 MiB: an inventory is at most 1\.0 MiB$/ },
  { name: 'missing file', content: null, line: undefined, variable: undefined, message: /^inventory file does not exist$/ },
];

const dir = mkdtempSync(join(tmpdir(), 'kha-inv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('bad inventories are refused with exit code 2', () => {
  it('has at least 30 rows', () => assert.ok(rows.length >= 30, `${rows.length} rows`));

  rows.forEach((row, i) => {
    it(row.name, async () => {
      const file = join(dir, `case-${i}.ini`);
      if (row.content !== null) writeFileSync(file, row.content);
      const err = await loadInventory(file).then(
        (spec) => assert.fail(`accepted: ${JSON.stringify(spec)}`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof InventoryError, `not an InventoryError: ${String(err)}`);
      assert.equal(err.exitCode, 2);
      assert.equal(err.file, file);
      const hit = err.problems.find((p) => p.line === row.line && p.variable === row.variable && row.message.test(p.message));
      assert.ok(hit, `no problem at line ${row.line} for ${row.variable} matching ${row.message}; got ${JSON.stringify(err.problems, null, 1)}`);
      if (row.hint) assert.match(hit.hint ?? '', row.hint);
      if (row.secret) {
        assert.ok(!err.message.includes(row.secret), 'secret in error message');
        assert.ok(!JSON.stringify(err.problems).includes(row.secret), 'secret in problems');
      }
    });
  });

  it('reports all problems of one file at once, sorted by line', async () => {
    const file = join(dir, 'many.ini');
    writeFileSync(file, '[masters]\nm1 ansible_host=10.0.0.1 priority=0\nm2 ansible_host=10.0.0.2 vip_interface=a;b\n[masters:vars]\nvip=10.0.0.300\nvip_prot=1\n');
    const err = await loadInventory(file).catch((e: unknown) => e);
    assert.ok(err instanceof InventoryError);
    assert.deepEqual(
      err.problems.map((p) => [p.line, p.variable]),
      [
        [2, 'priority'],
        [3, 'vip_interface'],
        [5, 'vip'],
        [6, 'vip_prot'],
      ],
    );
  });

  it('refuses a directory with no inventory in it, naming the .ini files Ansible skips there', async () => {
    mkdirSync(join(dir, 'a-dir'));
    writeFileSync(join(dir, 'a-dir', 'hosts.ini'), '[masters]\nm1\n');
    const err = await loadInventory(join(dir, 'a-dir')).catch((e: unknown) => e);
    assert.ok(err instanceof InventoryError);
    assert.equal(err.problems.length, 1);
    assert.match(err.problems[0]!.message, /^inventory directory holds no inventory file: Ansible skips hosts\.ini there \(\.ini files are in its INVENTORY_IGNORE_EXTS\)$/);
    assert.match(err.problems[0]!.hint ?? '', /pass the file itself with -i/);
  });
});
