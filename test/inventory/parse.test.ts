import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseInventoryText, splitWords } from '../../src/inventory/parse.js';

describe('splitWords (host-line tokenizer)', () => {
  const cases: [string, string[] | { error: string }][] = [
    ['m1 ansible_host=1.2.3.4 priority=150', ['m1', 'ansible_host=1.2.3.4', 'priority=150']],
    ['m1\tkey="quoted value"   k2=\'x y\'', ['m1', 'key=quoted value', "k2=x y"]],
    ['m1 k="a \\"b\\" \\\\ \\n"', ['m1', 'k=a "b" \\ \\n']],
    ["m1 k='it''s'", ['m1', 'k=its']],
    ['m1 k=a\\ b', ['m1', 'k=a b']],
    ['m1 k=v # comment k2=v2', ['m1', 'k=v']],
    ['m1 k=v#not-a-comment', ['m1', 'k=v#not-a-comment']],
    ['m1 k="x # y"', ['m1', 'k=x # y']],
    ['m1 k=""', ['m1', 'k=']],
    ['# only a comment', []],
    ['m1 k="open', { error: 'unterminated double quote' }],
    ["m1 k='open", { error: 'unterminated single quote' }],
    ['m1 k=v\\', { error: 'line ends with a backslash' }],
  ];
  for (const [input, expected] of cases) {
    it(JSON.stringify(input), () => assert.deepEqual(splitWords(input), expected));
  }
});

describe('parseInventoryText', () => {
  it('reads groups, host lines, vars and children with 1-based line numbers', () => {
    const text = [
      '# comment', //                                        1
      '; another comment', //                                2
      '', //                                                 3
      '[masters]   # trailing comment', //                   4
      'master1 ansible_host=10.86.13.32 priority=150', //    5
      '  master2 ansible_host=10.86.13.31   # inline', //    6
      '[masters:vars]', //                                   7
      'vip=10.86.13.36', //                                  8
      'vip_port = 8443', //                                  9
      'kubeconfig="/etc/kubernetes/admin.conf" # path', //   10
      "haproxy_balance='leastconn'", //                      11
      'cluster_dir="{{ base_dir }}/clusters/x"', //          12
      'free_text=several words here ; kept', //             13
      '[all:vars]', //                                       14
      'ansible_user=root', //                                15
      '[k8s_cluster:children]', //                           16
      'masters', //                                          17
    ].join('\n');
    const raw = parseInventoryText(text, '/inv/hosts.ini');
    assert.equal(raw.file, '/inv/hosts.ini');
    assert.deepEqual(raw.problems, []);
    assert.deepEqual([...raw.groups.keys()], ['masters', 'all', 'k8s_cluster']);
    const m = raw.groups.get('masters')!;
    assert.equal(m.line, 4);
    assert.equal(m.varsLine, 7);
    assert.deepEqual(m.hosts, [
      {
        name: 'master1',
        line: 5,
        vars: [
          { key: 'ansible_host', value: '10.86.13.32', line: 5 },
          { key: 'priority', value: '150', line: 5, typed: 150 },
        ],
      },
      { name: 'master2', line: 6, vars: [{ key: 'ansible_host', value: '10.86.13.31', line: 6 }] },
    ]);
    assert.deepEqual(m.vars, [
      { key: 'vip', value: '10.86.13.36', line: 8 },
      { key: 'vip_port', value: '8443', line: 9, typed: 8443 },
      { key: 'kubeconfig', value: '/etc/kubernetes/admin.conf', line: 10 },
      { key: 'haproxy_balance', value: 'leastconn', line: 11 },
      { key: 'cluster_dir', value: '{{ base_dir }}/clusters/x', line: 12 },
      { key: 'free_text', value: 'several words here ; kept', line: 13 },
    ]);
    assert.deepEqual(raw.groups.get('all')!.vars, [{ key: 'ansible_user', value: 'root', line: 15 }]);
    assert.deepEqual(raw.groups.get('k8s_cluster')!.children, [{ name: 'masters', line: 17 }]);
  });

  it('accepts CRLF line ends and a UTF-8 byte order mark', () => {
    const raw = parseInventoryText('\uFEFF[kube_master]\r\n192.168.1.1 k8s_nodename=\'master-01\'\r\n', 'f');
    assert.deepEqual(raw.problems, []);
    assert.deepEqual(raw.groups.get('kube_master')!.hosts, [
      { name: '192.168.1.1', line: 2, vars: [{ key: 'k8s_nodename', value: 'master-01', line: 2 }] },
    ]);
  });

  it('records all three masters group names and the hosts before any header as ungrouped', () => {
    const raw = parseInventoryText('lonely\n[masters]\na\n[kube_master]\nb\n[kube_control_plane]\nc\n', 'f');
    assert.deepEqual(
      [...raw.groups.values()].map((g) => [g.name, g.line, g.hosts.map((h) => h.name)]),
      [
        ['ungrouped', 1, ['lonely']],
        ['masters', 2, ['a']],
        ['kube_master', 4, ['b']],
        ['kube_control_plane', 6, ['c']],
      ],
    );
  });

  it('merges a section that appears twice, keeping the first header line', () => {
    const raw = parseInventoryText('[masters]\na\n[etcd]\na\n[masters]\nb\n', 'f');
    assert.equal(raw.groups.get('masters')!.line, 1);
    assert.deepEqual(raw.groups.get('masters')!.hosts.map((h) => [h.name, h.line]), [['a', 2], ['b', 6]]);
  });

  it('keeps an unparsable [g:vars] value as written, like Ansible: a # after an unquoted value stays in it', () => {
    const raw = parseInventoryText('[all:vars]\nx="unterminated\ny=a b # c\nz="10.0.0.1"  # c\n', 'f');
    assert.deepEqual(raw.problems, []);
    assert.deepEqual(raw.groups.get('all')!.vars.map((v) => v.value), ['"unterminated', 'a b # c', '10.0.0.1']);
  });

  it('expands host ranges and name:port as Ansible does', () => {
    const raw = parseInventoryText('[nodes]\nnode[01:03] ansible_user=x\nweb-[a:c]-[1:2]\nh[1:10:4]\ncp1:2222\n[2001:db8::1]:22\n', 'f');
    assert.deepEqual(raw.problems, []);
    const hosts = raw.groups.get('nodes')!.hosts;
    assert.deepEqual(hosts.map((h) => h.name), ['node01', 'node02', 'node03', 'web-a-1', 'web-a-2', 'web-b-1', 'web-b-2', 'web-c-1', 'web-c-2', 'h1', 'h5', 'h9', 'cp1', '2001:db8::1']);
    assert.deepEqual(hosts[0]!.vars, [{ key: 'ansible_user', value: 'x', line: 2 }]);
    assert.deepEqual(hosts[12]!.vars, [{ key: 'ansible_port', value: '2222', line: 5, typed: 2222 }]);
  });

  it('refuses [g:vars] and :children naming a group that is never defined, as Ansible does', () => {
    const raw = parseInventoryText('[masters]\nm1\n[masters:children]\nghost\n[etcd:vars]\nx=1\n', 'f');
    assert.deepEqual(raw.problems.map((p) => [p.line, p.variable, p.message]), [
      [5, 'etcd', '[etcd:vars] names group etcd, which is not defined in this file'],
      [4, 'ghost', '[masters:children] names group ghost, which is not defined in this file'],
    ]);
  });

  it('reports syntax problems with their line, and never the value', () => {
    const raw = parseInventoryText(
      [
        '[masters', //                                    1
        'a', //                                           2 (skipped: no valid section)
        '[masters:hosts]', //                             3
        '[masters]', //                                   4
        'm1 ansible_host=1.2.3.4 junk', //                5
        'vip=10.0.0.1', //                                6
        'm2 vrrp_auth_pass="s3cret', //                   7
        '[masters:vars]', //                              8
        'vrrp_auth_pass s3cret', //                       9
        '[masters:children]', //                          10
        'two words', //                                   11
      ].join('\n'),
      'f',
    );
    assert.deepEqual(raw.problems, [
      { line: 1, message: 'malformed section header: expected [group], [group:vars] or [group:children]' },
      { line: 3, message: 'unknown section kind ":hosts": only [group], [group:vars] and [group:children] exist' },
      { line: 5, variable: 'm1', message: "expected key=value after host m1, found a word without '='" },
      {
        line: 6,
        variable: 'vip',
        message: 'a variable in the host list of [masters]: lines here must start with a host name',
        hint: 'put group variables under [masters:vars] or [all:vars]',
      },
      { line: 7, variable: 'm2', message: 'cannot split this line into words: unterminated double quote' },
      { line: 9, variable: 'vrrp_auth_pass', message: 'expected key=value in [masters:vars]' },
      { line: 11, variable: 'two', message: 'expected one group name per line in [masters:children]' },
    ]);
    assert.ok(!JSON.stringify(raw.problems).includes('s3cret'));
    assert.deepEqual(raw.groups.get('masters')!.hosts.map((h) => h.name), ['m1']);
  });
});
