// Rendering: golden files compared byte for byte (regenerate with UPDATE_GOLDEN=1), and the
// renderer's refusals. The golden files were checked with `haproxy -c` / `keepalived --config-test`.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadPlaybook, type Playbook } from '../src/playbook.js';
import { MANAGED_HEADER, renderHaproxy, renderKeepalived, renderTemplate, renderTmpfiles } from '../src/render.js';
import { cluster, cluster6, host } from './fixtures/facts/cluster.js';

const playbook = loadPlaybook();
const goldenDir = new URL('./golden/', import.meta.url);

function golden(name: string, actual: string): void {
  const file = new URL(name, goldenDir);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  assert.ok(existsSync(file), `missing golden file test/golden/${name}: run with UPDATE_GOLDEN=1 to create it`);
  assert.equal(actual, readFileSync(file, 'utf8'), `test/golden/${name} differs (UPDATE_GOLDEN=1 regenerates it; review the diff)`);
}

describe('golden files', () => {
  it('haproxy.cfg (IPv4, three masters)', () => golden('haproxy.cfg', renderHaproxy(cluster(), playbook)));
  it('keepalived.conf for master1 (auth, eth0)', () => {
    const s = cluster();
    golden('keepalived-master1.conf', renderKeepalived(s, host(s, 'master1'), 'eth0', playbook));
  });
  it('keepalived.conf for master2 without auth', () => {
    const { vrrpAuthPass: _none, ...s } = cluster();
    golden('keepalived-master2-noauth.conf', renderKeepalived(s, host(s, 'master2'), 'ens192', playbook));
  });
  it('haproxy.cfg (IPv6)', () => golden('haproxy-ipv6.cfg', renderHaproxy(cluster6(), playbook)));
  it('keepalived.conf (IPv6)', () => {
    const s = cluster6();
    golden('keepalived-ipv6-master1.conf', renderKeepalived(s, host(s, 'master1'), 'eth0', playbook));
  });
  it('tmpfiles.d entry', () => golden('kha-deploy-haproxy.conf', renderTmpfiles(playbook)));
});

describe('rendered content', () => {
  it('starts with the managed header, ends with exactly one newline, and is deterministic', () => {
    const s = cluster();
    for (const text of [renderHaproxy(s, playbook), renderKeepalived(s, host(s, 'master3'), 'eth0', playbook), renderTmpfiles(playbook)]) {
      assert.equal(text.split('\n')[0], MANAGED_HEADER);
      assert.ok(text.endsWith('}\n') || text.endsWith('weight 1\n') || text.endsWith('root root -\n'), JSON.stringify(text.slice(-20)));
      assert.ok(!text.endsWith('\n\n'));
    }
    assert.equal(renderHaproxy(s, playbook), renderHaproxy(cluster(), playbook));
  });

  it('haproxy.cfg: one server line per master in inventory order, balance from the spec, IPv4 bind only', () => {
    const text = renderHaproxy(cluster({ haproxyBalance: 'leastconn' }), playbook);
    assert.deepEqual(
      text.split('\n').filter((l) => /^\s*server /.test(l)),
      [
        '    server master1 10.0.0.11:6443 check inter 10000 fall 2 rise 2 weight 1',
        '    server master2 10.0.0.12:6443 check inter 10000 fall 2 rise 2 weight 1',
        '    server master3 10.0.0.13:6443 check inter 10000 fall 2 rise 2 weight 1',
      ],
    );
    assert.match(text, /^ {4}balance leastconn$/m);
    assert.deepEqual(text.split('\n').filter((l) => /^\s*bind /.test(l)), ['    bind :8443']);
    assert.match(text, /^ {4}stats socket \/run\/haproxy\/admin\.sock mode 660 level admin$/m);
  });

  it('haproxy.cfg (IPv6): [addr]:port servers and a v4v6 bind', () => {
    const text = renderHaproxy(cluster6(), playbook);
    assert.match(text, /^ {4}server master2 \[2001:db8::12\]:6443 check /m);
    assert.deepEqual(text.split('\n').filter((l) => /^\s*bind /.test(l)), ['    bind :::8443 v4v6']);
  });

  it('keepalived.conf differs per master only in router_id, priority and interface', () => {
    const s = cluster();
    const a = renderKeepalived(s, host(s, 'master1'), 'eth0', playbook).split('\n');
    const b = renderKeepalived(s, host(s, 'master2'), 'ens192', playbook).split('\n');
    const diff = a.flatMap((l, i) => (l === b[i] ? [] : [[l.trim(), b[i]!.trim()]]));
    assert.deepEqual(diff, [
      ['router_id kha_master1', 'router_id kha_master2'],
      ['priority 150', 'priority 140'],
      ['interface eth0', 'interface ens192'],
      ['10.0.0.100/32 dev eth0', '10.0.0.100/32 dev ens192'],
    ]);
  });

  it('keepalived.conf: state BACKUP everywhere, the auth block only with a password, /128 for IPv6', () => {
    const s = cluster();
    const withAuth = renderKeepalived(s, host(s, 'master1'), 'eth0', playbook);
    assert.match(withAuth, /^ {4}state BACKUP$/m);
    assert.match(withAuth, /^ {8}auth_pass s3cr3tpw$/m);
    const { vrrpAuthPass: _none, ...noAuth } = s;
    const without = renderKeepalived(noAuth, host(s, 'master1'), 'eth0', playbook);
    assert.doesNotMatch(without, /authentication|auth_pass/);
    const s6 = cluster6();
    assert.match(renderKeepalived(s6, host(s6, 'master1'), 'eth0', playbook), /^ {8}2001:db8::100\/128 dev eth0$/m);
  });

  it('refuses auth with an IPv6 VIP (VRRPv3 has none; keepalived rejects it)', () => {
    const s6 = { ...cluster6(), vrrpAuthPass: 'pw' };
    assert.throws(() => renderKeepalived(s6, host(s6, 'master1'), 'eth0', playbook), /vrrp_auth_pass cannot be used with an IPv6 VIP/);
  });
});

describe('defensive rendering', () => {
  const bad = ['eth0 ', 'a\nb', 'a{', 'a}', 'a"b', "a'b", 'a#b', 'a!b', 'a\\b', 'a$b', 'a\tb', ''];
  for (const v of bad) {
    it(`refuses interface ${JSON.stringify(v)} without showing the value`, () => {
      const s = cluster();
      assert.throws(
        () => renderKeepalived(s, host(s, 'master1'), v, playbook),
        (err: Error) => /\{\{ interface \}\}/.test(err.message) && (v.length < 2 || !err.message.includes(v)),
      );
    });
  }

  it('refuses a secret with a comment character and never prints it', () => {
    const s = cluster({ vrrpAuthPass: 'pa!ss' });
    assert.throws(
      () => renderKeepalived(s, host(s, 'master1'), 'eth0', playbook),
      (err: Error) => err.message.includes('{{ vrrp_auth_pass }}') && !err.message.includes('pa!ss'),
    );
  });

  it('refuses a server address with whitespace', () => {
    const s = cluster();
    s.hosts[1] = { ...s.hosts[1]!, address: '10.0.0.12 backup' };
    assert.throws(() => renderHaproxy(s, playbook), /\{\{ server\.address \}\} contains whitespace/);
  });

  it('refuses non-integer numbers', () => {
    assert.throws(() => renderHaproxy(cluster({ vipPort: 84.5 }), playbook), /\{\{ vip_port \}\} is not an integer/);
  });
});

describe('template syntax', () => {
  const r = (text: string, ctx = {}) => renderTemplate(text, ctx, 't.tmpl');

  it('substitutes names, repeats list blocks with the singular item name, and shows optional blocks', () => {
    const out = r('a {{ x }}\n{{#items}}\n- {{ item.n }}={{ y }}\n{{/items}}\n{{#on}}\non\n{{/on}}\n{{#off}}\noff\n{{/off}}\nend\n', {
      x: 'X',
      y: 7,
      items: [{ n: 'one' }, { n: 'two' }],
      on: true,
      off: false,
    });
    assert.equal(out, `${MANAGED_HEADER}\na X\n- one=7\n- two=7\non\nend\n`);
  });

  it('treats a string block as present when non-empty and absent when undefined', () => {
    assert.equal(r('{{#p}}\np={{ p }}\n{{/p}}\n', { p: 'pw' }), `${MANAGED_HEADER}\np=pw\n`);
    assert.equal(r('{{#p}}\np={{ p }}\n{{/p}}\n', { p: undefined }), `${MANAGED_HEADER}\n`);
  });

  it('throws on unknown names, malformed tags and bad nesting', () => {
    assert.throws(() => r('{{ nope }}\n'), /t\.tmpl line 1: unknown placeholder \{\{ nope \}\}/);
    assert.throws(() => r('x\n{{#nope}}\n{{/nope}}\n'), /line 2: unknown block/);
    assert.throws(() => r('{{ a b }}\n', { a: 'x' }), /malformed placeholder/);
    assert.throws(() => r('{{ a\n', { a: 'x' }), /'\{\{' without '\}\}'/);
    assert.throws(() => r('a }}\n'), /'\}\}' without '\{\{'/);
    assert.throws(() => r('x {{#a}}\n', { a: true }), /must stand on a line of its own/);
    assert.throws(() => r('{{#a}}\n{{#b}}\n{{/b}}\n{{/a}}\n', { a: true, b: true }), /blocks do not nest/);
    assert.throws(() => r('{{#a}}\nx\n', { a: true }), /line 1: \{\{#a\}\} is never closed/);
    assert.throws(() => r('{{/a}}\n', { a: true }), /closes no block/);
    assert.throws(() => r('{{#item}}\n{{/item}}\n', { item: [{ n: 'x' }] }), /plural name ending in 's'/);
    assert.throws(() => r('{{#items}}\n{{ item.x }}\n{{/items}}\n', { items: [{ n: 'x' }] }), /unknown placeholder \{\{ item\.x \}\}/);
    assert.throws(() => r('{{ item.n }}\n', { items: [{ n: 'x' }] }), /not the item of an enclosing list block/);
    assert.throws(() => r('{{ on }}\n', { on: true }), /has no text value/);
    assert.throws(() => r('a\r\nb\n'), /CR characters/);
  });
});

describe('the playbook templates', () => {
  it('never leave a {{ or }} in the output', () => {
    const s = cluster();
    const all = [renderHaproxy(s, playbook), renderKeepalived(s, host(s, 'master1'), 'eth0', playbook), renderTmpfiles(playbook)].join('');
    assert.doesNotMatch(all, /\{\{|\}\}/);
  });

  it('use the playbook given, not a fixed file', () => {
    const custom: Playbook = { ...playbook, files: { ...playbook.files, tmpfiles: { ...playbook.files.tmpfiles, templateText: 'd {{ run_dir }} 0700 root root -\n' } } };
    assert.equal(renderTmpfiles(custom), `${MANAGED_HEADER}\nd /run/haproxy 0700 root root -\n`);
  });
});
