// Rendering: golden files compared byte for byte (regenerate with UPDATE_GOLDEN=1), and the
// renderer's refusals. The golden files were checked with `haproxy -c` / `keepalived --config-test`.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { loadPlaybook, type Playbook } from '../src/playbook.js';
import {
  MANAGED_HEADER,
  type RenderFacts,
  UNKNOWN_RENDER_FACTS,
  haproxySeamlessReload,
  renderHaproxy,
  renderKeepalived,
  renderTemplate,
  renderTmpfiles,
  tracksProcess,
  versionAtLeast,
} from '../src/render.js';
import { DEBIAN12_VERSIONS, cluster, cluster6, host } from './fixtures/facts/cluster.js';

const playbook = loadPlaybook();
/** Debian 12 (the lab): keepalived 2.2.7, haproxy 2.6.12 with PROMEX, a VM (process events reach keepalived). */
const DEB: RenderFacts = DEBIAN12_VERSIONS;
/** CentOS 7: keepalived 1.3.5 (no vrrp_track_process), haproxy 1.5.18 (no expose-fd, no hard-stop-after). */
const CENTOS7: RenderFacts = { keepalivedVersion: '1.3.5', haproxyVersion: '1.5.18', haproxyPromex: false, procEvents: true };
/** The text without its comment lines (comments may name what the config leaves out). */
const config = (text: string) => text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
const goldenDir = new URL('./golden/', import.meta.url);

function golden(name: string, actual: string): void {
  const file = new URL(name, goldenDir);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  assert.ok(existsSync(file), `missing golden file test/golden/${name}: run with UPDATE_GOLDEN=1 to create it`);
  assert.equal(actual, readFileSync(file, 'utf8'), `test/golden/${name} differs (UPDATE_GOLDEN=1 regenerates it; review the diff)`);
}

// Every golden file must pass `haproxy -c -f FILE` (2.6) / `keepalived --config-test --use-file=FILE` (2.2.7).
describe('golden files', () => {
  it('haproxy.cfg (IPv4, three masters, /readyz checks, Debian 12: with the Prometheus exporter)', () => golden('haproxy.cfg', renderHaproxy(cluster(), playbook, DEB)));
  it('haproxy.cfg (haproxy_health_check=tcp, other inter/fall/rise, monitor port 9404)', () =>
    golden('haproxy-tcp.cfg', renderHaproxy(cluster({ haproxyHealthCheck: 'tcp', haproxyCheckInter: 5, haproxyCheckFall: 2, haproxyCheckRise: 3, haproxyMonitorPort: 9404 }), playbook, DEB)));
  it('haproxy.cfg (haproxy 2.6 without PROMEX: no exporter)', () => golden('haproxy-no-promex.cfg', renderHaproxy(cluster(), playbook, { ...DEB, haproxyPromex: false })));
  it('haproxy.cfg (haproxy 1.5: no expose-fd, no hard-stop-after)', () => golden('haproxy-1.5.cfg', renderHaproxy(cluster(), playbook, CENTOS7)));
  it('keepalived.conf for master1 (auth, eth0, vrrp_track_process)', () => {
    const s = cluster();
    golden('keepalived-master1.conf', renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, DEB));
  });
  it('keepalived.conf for master2 without auth', () => {
    const { vrrpAuthPass: _none, ...s } = cluster();
    golden('keepalived-master2-noauth.conf', renderKeepalived(s, host(s, 'master2'), 'ens192', playbook, DEB));
  });
  it('keepalived.conf for master1 on keepalived 1.3.5 (no vrrp_track_process: the systemctl script)', () => {
    const s = cluster();
    golden('keepalived-1.3.5-master1.conf', renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, CENTOS7));
  });
  it('keepalived.conf for master3 with vrrp_preempt=false (nopreempt)', () => {
    const s = cluster({ vrrpPreempt: false });
    golden('keepalived-nopreempt-master3.conf', renderKeepalived(s, host(s, 'master3'), 'eth0', playbook, DEB));
  });
  it('keepalived.conf for master1 with vrrp_preempt_delay=300', () => {
    const s = cluster({ vrrpPreemptDelay: 300 });
    golden('keepalived-preempt-delay-master1.conf', renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, DEB));
  });
  it('keepalived.conf for master1 on a running keepalived 2.2.4 without the serving check (not added by reload)', () => {
    const s = cluster();
    const running = { keepalived: { active: 'active', enabled: 'enabled', mainPid: 7 }, haproxy: { active: 'active', enabled: 'enabled', mainPid: 8 } };
    const text = renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, { ...DEB, keepalivedVersion: '2.2.4', keepalivedServingCheck: false, units: running });
    golden('keepalived-2.2.4-deferred-master1.conf', text);
    assert.doesNotMatch(text, /chk_haproxy_serving|track_script/);
    // Not running yet (a start loads it from the beginning), or already there: the check is rendered.
    for (const f of [
      { ...DEB, keepalivedVersion: '2.2.4', keepalivedServingCheck: false },
      { ...DEB, keepalivedVersion: '2.2.4', keepalivedServingCheck: true, units: running },
      { ...DEB, keepalivedVersion: '2.2.5', keepalivedServingCheck: false, units: running },
    ]) {
      assert.match(renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, f), /track_script \{\n\s+chk_haproxy_serving\n\s+\}/);
    }
  });
  it('haproxy.cfg (IPv6)', () => golden('haproxy-ipv6.cfg', renderHaproxy(cluster6(), playbook, DEB)));
  it('keepalived.conf (IPv6)', () => {
    const s = cluster6();
    golden('keepalived-ipv6-master1.conf', renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, DEB));
  });
  it('keepalived.conf for master2 with vrrp_unicast=true (unicast_src_ip, unicast_peer)', () => {
    const s = cluster({ vrrpUnicast: true });
    const text = renderKeepalived(s, host(s, 'master2'), 'eth0', playbook, DEB);
    golden('keepalived-unicast-master2.conf', text);
    const me = host(s, 'master2').address;
    assert.match(text, new RegExp(`unicast_src_ip ${me.replace(/\./g, '\\.')}\n`));
    const peers = /unicast_peer \{\n([^}]*)\}/.exec(text)![1]!.trim().split(/\s+/);
    assert.deepEqual(peers, s.hosts.filter((h) => h.name !== 'master2').map((h) => h.address));
  });
  it('keepalived.conf (IPv6) with vrrp_unicast=true', () => {
    const s = { ...cluster6(), vrrpUnicast: true };
    golden('keepalived-ipv6-unicast-master1.conf', renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, DEB));
  });
  it('keepalived.conf without vrrp_unicast has no unicast lines (multicast)', () => {
    assert.doesNotMatch(renderKeepalived(cluster(), host(cluster(), 'master1'), 'eth0', playbook, DEB), /unicast/);
  });
  it('tmpfiles.d entry', () => golden('kha-deploy-haproxy.conf', renderTmpfiles(playbook)));
});

describe('rendered content', () => {
  it('starts with the managed header, ends with exactly one newline, and is deterministic', () => {
    const s = cluster();
    for (const text of [renderHaproxy(s, playbook, DEB), renderKeepalived(s, host(s, 'master3'), 'eth0', playbook, DEB), renderTmpfiles(playbook)]) {
      assert.equal(text.split('\n')[0], MANAGED_HEADER);
      assert.ok(text.endsWith('}\n') || text.endsWith('{ path /metrics }\n') || text.endsWith('root root -\n'), JSON.stringify(text.slice(-20)));
      assert.ok(!text.endsWith('\n\n'));
    }
    assert.equal(renderHaproxy(s, playbook, DEB), renderHaproxy(cluster(), playbook, { ...DEB }));
  });

  it('haproxy.cfg: one server line per master in inventory order, balance from the spec, IPv4 bind only', () => {
    const text = renderHaproxy(cluster({ haproxyBalance: 'leastconn' }), playbook, DEB);
    assert.deepEqual(
      text.split('\n').filter((l) => /^\s*server /.test(l)),
      [
        '    server master1 10.0.0.11:6443 check check-ssl verify none inter 2s fall 3 rise 2 fastinter 1s on-marked-down shutdown-sessions',
        '    server master2 10.0.0.12:6443 check check-ssl verify none inter 2s fall 3 rise 2 fastinter 1s on-marked-down shutdown-sessions',
        '    server master3 10.0.0.13:6443 check check-ssl verify none inter 2s fall 3 rise 2 fastinter 1s on-marked-down shutdown-sessions',
      ],
    );
    assert.match(text, /^ {4}balance leastconn$/m);
    assert.deepEqual(text.split('\n').filter((l) => /^\s*bind /.test(l)), ['    bind :8443', '    bind 127.0.0.1:8404']);
    assert.match(text, /^ {4}stats socket \/run\/haproxy\/admin\.sock mode 660 level admin expose-fd listeners$/m);
  });

  it('haproxy.cfg (IPv6): [addr]:port servers and a v4v6 bind', () => {
    const text = renderHaproxy(cluster6(), playbook, DEB);
    assert.match(text, /^ {4}server master2 \[2001:db8::12\]:6443 check /m);
    assert.deepEqual(text.split('\n').filter((l) => /^\s*bind /.test(l)), ['    bind :::8443 v4v6', '    bind 127.0.0.1:8404']);
  });

  it('keepalived.conf differs per master only in router_id, priority and interface', () => {
    const s = cluster();
    const a = renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, DEB).split('\n');
    const b = renderKeepalived(s, host(s, 'master2'), 'ens192', playbook, DEB).split('\n');
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
    const withAuth = renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, DEB);
    assert.match(withAuth, /^ {4}state BACKUP$/m);
    assert.match(withAuth, /^ {8}auth_pass s3cr3tpw$/m);
    const { vrrpAuthPass: _none, ...noAuth } = s;
    const without = renderKeepalived(noAuth, host(s, 'master1'), 'eth0', playbook, DEB);
    assert.doesNotMatch(without, /authentication|auth_pass/);
    const s6 = cluster6();
    assert.match(renderKeepalived(s6, host(s6, 'master1'), 'eth0', playbook, DEB), /^ {8}2001:db8::100\/128 dev eth0$/m);
  });

  it('refuses auth with an IPv6 VIP (VRRPv3 has none; keepalived rejects it)', () => {
    const s6 = { ...cluster6(), vrrpAuthPass: 'pw' };
    assert.throws(() => renderKeepalived(s6, host(s6, 'master1'), 'eth0', playbook), /vrrp_auth_pass cannot be used with an IPv6 VIP/);
  });
});

describe('health checks and failover (haproxy.cfg)', () => {
  const lines = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l)).map((l) => l.trim());

  it('readyz (default): GET /readyz over TLS, expect 200, sessions cut when a server is marked down', () => {
    const text = renderHaproxy(cluster(), playbook, DEB);
    assert.deepEqual(lines(text, /httpchk|http-check|timeout check/), ['timeout check 3s', 'option httpchk GET /readyz', 'http-check expect status 200']);
    assert.match(text, /^ {4}server master1 10\.0\.0\.11:6443 check check-ssl verify none inter 2s fall 3 rise 2 fastinter 1s on-marked-down shutdown-sessions$/m);
  });

  it('tcp: a plain check with the inventory\'s inter/fall/rise, no HTTP check', () => {
    const text = renderHaproxy(cluster({ haproxyHealthCheck: 'tcp', haproxyCheckInter: 10, haproxyCheckFall: 2, haproxyCheckRise: 4 }), playbook, DEB);
    assert.deepEqual(lines(text, /httpchk|http-check|check-ssl/), []);
    assert.deepEqual(lines(text, /^\s*server /), [
      'server master1 10.0.0.11:6443 check inter 10s fall 2 rise 4 fastinter 1s on-marked-down shutdown-sessions',
      'server master2 10.0.0.12:6443 check inter 10s fall 2 rise 4 fastinter 1s on-marked-down shutdown-sessions',
      'server master3 10.0.0.13:6443 check inter 10s fall 2 rise 4 fastinter 1s on-marked-down shutdown-sessions',
    ]);
  });

  it('keeps retries, redispatch, the 2s connect timeout and the long client/server timeouts; adds the hygiene settings', () => {
    const text = renderHaproxy(cluster(), playbook, DEB);
    for (const want of ['retries 2', 'option redispatch', 'timeout connect 2s', 'timeout client 4h', 'timeout server 4h', 'timeout client-fin 30s', 'timeout server-fin 30s', 'option dontlognull', 'hard-stop-after 30m', 'maxconn 20000']) {
      assert.ok(lines(text, /\S/).includes(want), want);
    }
    assert.match(text, /^ {4}stats socket \/run\/haproxy\/admin\.sock mode 660 level admin expose-fd listeners$/m);
  });

  it('a monitor frontend on 127.0.0.1 only: /healthz from nbsrv(kube-master), /stats, and /metrics only where haproxy has PROMEX', () => {
    const monitor = (f: RenderFacts, port = 8404) => {
      const text = renderHaproxy(cluster({ haproxyMonitorPort: port }), playbook, f);
      return text.slice(text.indexOf('frontend kha-monitor'));
    };
    const m = monitor(DEB, 9999);
    assert.deepEqual(lines(m, /^\s*(bind|mode|monitor|stats)/), ['bind 127.0.0.1:9999', 'mode http', 'monitor-uri /healthz', 'monitor fail if { nbsrv(kube-master) lt 1 }', 'stats enable', 'stats uri /stats']);
    assert.match(m, /^ {4}http-request use-service prometheus-exporter if \{ path \/metrics \}$/m);
    for (const f of [{ ...DEB, haproxyPromex: false }, { ...DEB, haproxyPromex: null }, UNKNOWN_RENDER_FACTS]) assert.doesNotMatch(config(monitor(f)), /prometheus|metrics/, JSON.stringify(f));
    // The only listener besides the VIP port.
    assert.deepEqual(lines(renderHaproxy(cluster(), playbook, DEB), /^\s*bind /), ['bind :8443', 'bind 127.0.0.1:8404']);
  });

  it('haproxy < 1.8 (CentOS 7): no expose-fd, no hard-stop-after; unknown versions count as current', () => {
    const old = config(renderHaproxy(cluster(), playbook, CENTOS7));
    assert.doesNotMatch(old, /expose-fd|hard-stop-after/);
    assert.match(old, /^ {4}stats socket \/run\/haproxy\/admin\.sock mode 660 level admin$/m);
    assert.equal(haproxySeamlessReload({ ...CENTOS7, haproxyVersion: '1.8' }), true);
    assert.equal(haproxySeamlessReload({ ...CENTOS7, haproxyVersion: '1.7.14' }), false);
    assert.equal(haproxySeamlessReload(UNKNOWN_RENDER_FACTS), true);
    assert.equal(renderHaproxy(cluster(), playbook), renderHaproxy(cluster(), playbook, { ...DEB, haproxyPromex: false }), 'no facts = unknown = current haproxy without the exporter');
  });
});

describe('tracking and failover (keepalived.conf)', () => {
  const m1 = (f: RenderFacts, over: Parameters<typeof cluster>[0] = {}) => {
    const s = cluster(over);
    return renderKeepalived(s, host(s, 'master1'), 'eth0', playbook, f);
  };

  it('keepalived >= 2.0.11 on a VM: vrrp_track_process (weight 0: FAULT without haproxy), no polling script', () => {
    const text = m1(DEB);
    assert.match(text, /^vrrp_track_process haproxy_running \{\n {4}process haproxy\n {4}weight 0\n\}$/m);
    assert.match(text, /^ {4}track_process \{\n {8}haproxy_running\n {4}\}$/m);
    assert.doesNotMatch(config(text), /systemctl|chk_haproxy\b(?!_)/);
    assert.match(text, /^ {4}track_script \{\n {8}chk_haproxy_serving\n {4}\}$/m);
  });

  it('keepalived 1.3.5, 2.0.10, or a container (no process events): the systemctl script instead, identical output', () => {
    const old = m1(CENTOS7);
    assert.doesNotMatch(config(old), /track_process/);
    assert.match(old, /^ {4}script "\/usr\/bin\/systemctl is-active --quiet haproxy\.service"$/m);
    assert.match(old, /^ {4}track_script \{\n {8}chk_haproxy\n {8}chk_haproxy_serving\n {4}\}$/m);
    assert.equal(m1({ ...DEB, keepalivedVersion: '2.0.10' }), old);
    assert.equal(m1({ ...DEB, procEvents: false }), old, 'in a container the kernel does not report process events to keepalived');
    assert.equal(tracksProcess({ ...DEB, keepalivedVersion: '2.0.11' }), true);
    assert.equal(tracksProcess(UNKNOWN_RENDER_FACTS), true, 'unknown: render for a current keepalived (facts are read again after installing)');
    assert.equal(m1(UNKNOWN_RENDER_FACTS), m1(DEB));
  });

  it('the check asks the local haproxy monitor with /usr/bin/curl; its weight comes from the spec', () => {
    const text = m1(DEB, { haproxyMonitorPort: 9404, vrrpCheckWeight: -45 });
    assert.match(text, /^ {4}script "\/usr\/bin\/curl -sf -o \/dev\/null -m 2 http:\/\/127\.0\.0\.1:9404\/healthz"$/m);
    assert.match(text, /^ {4}weight -45$/m);
    assert.throws(() => m1(DEB, { vrrpCheckWeight: 0 }), /VRRP check weight 0 is not from -253 to -1/);
    assert.throws(() => m1(DEB, { vrrpCheckWeight: -254 }), /VRRP check weight -254/);
  });

  it('global_defs: gratuitous ARP refresh and the higher-priority advert', () => {
    const text = m1(DEB);
    assert.match(text, /^ {4}vrrp_garp_master_refresh 60$/m);
    assert.match(text, /^ {4}vrrp_higher_prio_send_advert true$/m);
  });

  it('preemption: on by default; nopreempt for vrrp_preempt=false; preempt_delay when set (0: none)', () => {
    assert.doesNotMatch(config(m1(DEB)), /preempt/);
    assert.match(m1(DEB, { vrrpPreempt: false }), /^ {4}nopreempt$/m);
    assert.doesNotMatch(config(m1(DEB, { vrrpPreempt: false })), /preempt_delay/);
    assert.match(m1(DEB, { vrrpPreemptDelay: 45 }), /^ {4}preempt_delay 45$/m);
    assert.doesNotMatch(config(m1(DEB, { vrrpPreemptDelay: 0 })), /preempt/);
    for (const text of [m1(DEB, { vrrpPreempt: false }), m1(DEB, { vrrpPreemptDelay: 45 })]) assert.match(text, /^ {4}state BACKUP$/m, 'both need state BACKUP');
  });
});

describe('versionAtLeast', () => {
  it('compares numerically, part by part', () => {
    assert.equal(versionAtLeast('2.2.7', '2.0.11'), true);
    assert.equal(versionAtLeast('2.0.11', '2.0.11'), true);
    assert.equal(versionAtLeast('2.0.9', '2.0.11'), false);
    assert.equal(versionAtLeast('1.3.5', '2.0.11'), false);
    assert.equal(versionAtLeast('10.0', '9.9.9'), true);
    assert.equal(versionAtLeast('1.8', '1.8.0'), true);
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
    assert.throws(() => renderHaproxy(s, playbook), /\{\{ readyz_server\.address \}\} contains whitespace/);
    assert.throws(() => renderHaproxy({ ...s, haproxyHealthCheck: 'tcp' }, playbook), /\{\{ tcp_server\.address \}\} contains whitespace/);
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
