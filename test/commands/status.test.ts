import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ANSI_PAINT, NO_PAINT, pickPaint, statusReport, statusText, type HostStatusInput } from '../../src/commands/status.js';
import type { HostObservation } from '../../src/gates/observe.js';
import type { ClusterSpec, HostFacts, HostPlan } from '../../src/types.js';

const spec = { file: 'inv.ini', primary: 'm1', vip: '10.0.0.100', vipPort: 8443, order: ['m1', 'm2', 'm3'], vrrpPreempt: true } as unknown as ClusterSpec;
const UP = ['m1', 'm2', 'm3'].map((n) => ({ name: n, status: 'UP', checkStatus: 'L7OK' }));

function facts(host: string, haproxy = 'active'): HostFacts {
  return { host, units: { keepalived: { active: 'active', enabled: 'enabled', mainPid: 1 }, haproxy: { active: haproxy, enabled: 'enabled', mainPid: haproxy === 'active' ? 2 : 0 } } } as unknown as HostFacts;
}
const plan = (host: string, reason?: string): HostPlan => ({
  host,
  steps: [{ id: 'units', title: 'units', ops: reason ? [{ op: 'service', unit: 'haproxy', action: 'reload' }] : [], timeoutMs: 1, reason: reason ?? '' }],
  warnings: [],
});
function obs(host: string, o: { vip?: boolean; state?: 'MASTER' | 'BACKUP' | 'FAULT'; serve?: string; backends?: typeof UP | null; kubectl?: boolean } = {}): HostObservation {
  return {
    host,
    vipOn: o.vip ? ['eth0'] : [],
    kubectl: o.kubectl === false ? { ok: false, exitCode: 1, output: 'refused' } : { ok: true, exitCode: 0, output: 'Server Version: v1.30.0', serverVersion: 'v1.30.0' },
    health: {
      keepalivedActive: 'active',
      vrrpState: o.state ?? (o.vip ? 'MASTER' : 'BACKUP'),
      vrrpLog: [],
      serveCode: o.serve ?? '200',
      ...(o.backends === null ? {} : { backends: o.backends ?? UP }),
    },
  };
}
const healthy = (): HostStatusInput[] => [
  { host: 'm1', facts: facts('m1'), plan: plan('m1'), priority: 150, observation: obs('m1', { vip: true }) },
  { host: 'm2', facts: facts('m2'), plan: plan('m2'), priority: 140, observation: obs('m2') },
  { host: 'm3', facts: facts('m3'), plan: plan('m3'), priority: 130, observation: obs('m3') },
];

describe('status: verdicts', () => {
  it('healthy: exit 0, the primary holds the VIP, every backend UP', () => {
    const r = statusReport(spec, healthy());
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.reasons, []);
    assert.deepEqual(r.vipHolders, ['m1']);
    assert.deepEqual(r.hosts.map((h) => [h.host, h.vrrpState, h.priority, h.holdsVip]), [['m1', 'MASTER', 150, true], ['m2', 'BACKUP', 140, false], ['m3', 'BACKUP', 130, false]]);
  });

  it('haproxy stopped on m3: exit 1, reasons name m3', () => {
    const i = healthy();
    i[2] = { host: 'm3', facts: facts('m3', 'inactive'), plan: plan('m3', 'haproxy is not running (inactive)'), priority: 130, observation: obs('m3', { state: 'FAULT', serve: '000', backends: null }) };
    const r = statusReport(spec, i);
    assert.equal(r.exitCode, 1);
    assert.ok(r.reasons.length > 0 && r.reasons.every((x) => x.includes('m3')), r.reasons.join('\n'));
    assert.ok(r.reasons.some((x) => /haproxy is inactive on m3/.test(x)));
    assert.deepEqual(r.hosts.filter((h) => h.problems.length > 0).map((h) => h.host), ['m3']);
    assert.equal(r.hosts[2]!.backends, null);
    assert.deepEqual(r.hosts[2]!.drift, ['haproxy is not running (inactive)']);
  });

  it('nobody or several holders is loud', () => {
    const none = healthy();
    none[0]!.observation = obs('m1', { state: 'BACKUP' });
    const r = statusReport(spec, none);
    assert.equal(r.exitCode, 1);
    assert.ok(r.reasons.some((x) => /NOBODY holds the VIP/.test(x)));
    assert.match(statusText(r), /!! NOBODY holds the VIP 10\.0\.0\.100/);
    const two = healthy();
    two[1]!.observation = obs('m2', { vip: true });
    const s = statusReport(spec, two);
    assert.ok(s.reasons.some((x) => /SPLIT BRAIN/.test(x)));
    assert.match(statusText(s), /!! SPLIT BRAIN: the VIP 10\.0\.0\.100 is on m1, m2/);
  });

  it('a backend DOWN in one haproxy view, the VIP on a backup, and an unreadable master are each reasons', () => {
    const i = healthy();
    i[1]!.observation = obs('m2', { backends: [UP[0]!, UP[1]!, { name: 'm3', status: 'DOWN', checkStatus: 'L4CON' }] });
    i[2] = { host: 'm3', error: 'connection refused' };
    const r = statusReport(spec, i);
    assert.ok(r.reasons.some((x) => /haproxy on m2 sees m3 DOWN \(L4CON\)/.test(x)), r.reasons.join('\n'));
    assert.ok(r.reasons.some((x) => /m3 could not be read: connection refused/.test(x)));
    assert.match(statusText(r), /m3 {6}UNREACHABLE/);
    const moved = healthy();
    moved[0]!.observation = obs('m1', { state: 'BACKUP' });
    moved[1]!.observation = obs('m2', { vip: true });
    assert.ok(statusReport(spec, moved).reasons.some((x) => /on m2, not on the primary m1/.test(x)));
  });

  it('drift alone (the plan has ops) is degraded', () => {
    const i = healthy();
    i[1]!.plan = plan('m2', 'haproxy.cfg differs from the rendered one');
    const r = statusReport(spec, i);
    assert.equal(r.exitCode, 1);
    assert.match(r.reasons[0]!, /^drift on m2: haproxy\.cfg differs/);
  });
});

describe('status: table and JSON', () => {
  it('table: one row per master, backends per master, colour only when asked', () => {
    const text = statusText(statusReport(spec, healthy()));
    const lines = text.split('\n');
    assert.match(lines[2]!, /^MASTER +KEEPALIVED +HAPROXY +VRRP +PRIO +VIP +BACKENDS +DRIFT$/);
    assert.match(lines[3]!, /^m1\* +active\/enabled +active\/enabled +MASTER +150 +HOLDS VIP +3\/3 UP +none$/);
    assert.match(text, /^ {2}m2: m1 UP \(L7OK\), m2 UP \(L7OK\), m3 UP \(L7OK\)$/m);
    assert.match(text, /^VIP 10\.0\.0\.100 is on m1, the primary$/m);
    assert.match(text, /^healthy \(exit 0\)$/m);
    assert.ok(!text.includes('\x1b['));
    assert.ok(statusText(statusReport(spec, healthy()), ANSI_PAINT).includes('\x1b[32m'));
  });

  it('colour: a TTY without NO_COLOR only', () => {
    assert.equal(pickPaint(true, {}), ANSI_PAINT);
    assert.equal(pickPaint(true, { NO_COLOR: '1' }), NO_PAINT);
    assert.equal(pickPaint(false, {}), NO_PAINT);
  });

  it('the JSON document round-trips and says holder, backends and verdict', () => {
    const j = JSON.parse(JSON.stringify(statusReport(spec, healthy())));
    assert.equal(j.healthy, true);
    assert.deepEqual(j.vipHolders, ['m1']);
    assert.ok(j.hosts.every((h: { backends: { status: string }[] }) => h.backends.every((b) => b.status === 'UP')));
  });
});

describe('status: parsing the one command per master', () => {
  it('facts, the priority on disk and the observation come out of one output; drift from the plan', async () => {
    const { readFileSync } = await import('node:fs');
    const { loadPlaybook } = await import('../../src/playbook.js');
    const { cluster } = await import('../fixtures/facts/cluster.js');
    const { parseStatus, statusScript } = await import('../../src/commands/status.js');
    const c = cluster();
    const playbook = loadPlaybook();
    const host = c.hosts[0]!;
    const script = statusScript(c, playbook, host);
    assert.match(script, /^# kha-deploy status/);
    assert.ok(script.indexOf('kha-facts 1') < script.indexOf('@@KHA-PRIORITY') && script.indexOf('@@KHA-PRIORITY') < script.indexOf('@@KHA-OBSERVE'));
    const facts = readFileSync(new URL('../fixtures/facts/vip-held.txt', import.meta.url), 'utf8');
    const csv = '# pxname,svname,qcur,status,check_status\nkube-master,FRONTEND,,OPEN,\nkube-master,master1,0,UP,L7OK\nkube-master,master2,0,DOWN,* L4CON\nkube-master,BACKEND,0,UP,';
    const out = [
      'motd line',
      facts.trimEnd(),
      '@@KHA-PRIORITY',
      '150',
      '@@KHA-OBSERVE',
      '2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0',
      '2: eth0    inet 10.0.0.100/32 scope global eth0',
      '@@KHA-KUBECTL',
      'Server Version: v1.30.0',
      '@@KHA-RC=0',
      '@@KHA-VRRP',
      'ActiveState=active',
      '@@KHA-VRRP-LOG',
      '(VI_1) Entering MASTER STATE',
      '@@KHA-SERVE',
      '200',
      '@@KHA-STATS',
      csv,
      '',
    ].join('\n');
    const i = parseStatus(c, playbook, host, out);
    assert.equal(i.priority, 150);
    assert.deepEqual(i.observation!.vipOn, ['eth0']);
    assert.equal(i.observation!.health!.vrrpState, 'MASTER');
    assert.deepEqual(i.observation!.health!.backends, [
      { name: 'master1', status: 'UP', checkStatus: 'L7OK' },
      { name: 'master2', status: 'DOWN', checkStatus: 'L4CON' },
    ]);
    assert.ok(i.plan || i.planError);
    const r = statusReport(c, [i]);
    assert.equal(r.exitCode, 1);
    assert.ok(r.reasons.some((x) => /haproxy on master1 sees master2 DOWN \(L4CON\)/.test(x)), r.reasons.join('\n'));
  });
});
