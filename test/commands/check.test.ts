import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXIT_CHANGES_PENDING, checkExitCode, checkReport, checkText, fileDiff, parseReadFiles, readFilesScript } from '../../src/commands/check.js';
import type { ClusterSpec, HostPlan, PlannedStep } from '../../src/types.js';

const spec = { file: 'inv.ini', primary: 'm1', vip: '10.0.0.100', order: ['m1', 'm2', 'm3'] } as unknown as ClusterSpec;
const step = (id: string, ops: PlannedStep['ops'] = [], reason = ''): PlannedStep => ({ id, title: id, ops, timeoutMs: 1000, reason });
const converged = (host: string): HostPlan => ({ host, steps: [step('packages'), step('haproxy-config'), step('units')], warnings: [] });

describe('check: diff rendering', () => {
  it('shows a unified diff of the host file against the rendered one', () => {
    const d = fileDiff('/etc/haproxy/haproxy.cfg', 'a\n    balance roundrobin\nc\n', 'a\n    balance leastconn\nc\n');
    assert.match(d, /^--- \/etc\/haproxy\/haproxy\.cfg\n\+\+\+ \/etc\/haproxy\/haproxy\.cfg \(rendered\)\n@@ /);
    assert.ok(d.split('\n').includes('-    balance roundrobin'), d);
    assert.ok(d.split('\n').includes('+    balance leastconn'), d);
    assert.doesNotMatch(d, /^=+$/m);
  });

  it('masks auth_pass on both sides, by meaning (the VRID 51 stays)', () => {
    const before = 'virtual_router_id 51\n  auth_pass oldSecret\npriority 100\n';
    const after = 'virtual_router_id 51\n  auth_pass 51\npriority 150\n';
    const d = fileDiff('/etc/keepalived/keepalived.conf', before, after);
    assert.ok(!d.includes('oldSecret'), d);
    assert.match(d, /auth_pass \*{8}/);
    assert.ok(!/auth_pass 51/.test(d), d);
    assert.match(d, / virtual_router_id 51/);
    assert.match(d, /^-priority 100$/m);
    assert.match(d, /^\+priority 150$/m);
  });

  it('says so when only a secret differs, without showing it', () => {
    const d = fileDiff('/k.conf', 'auth_pass a\n', 'auth_pass b\n');
    assert.match(d, /only secret values differ/);
    assert.ok(!/auth_pass [ab]\b/.test(d));
  });

  it('diffs a missing file from /dev/null', () => {
    assert.match(fileDiff('/x', null, 'new\n'), /^--- \/dev\/null\n\+\+\+ \/x \(rendered\)\n@@ -0,0 \+1(,1)? @@\n\+new$/m);
  });
});

describe('check: report and exit code', () => {
  it('exit 0 when every plan is empty, 3 when any host has an op', () => {
    assert.equal(checkExitCode([converged('m1'), converged('m2')]), 0);
    const pending: HostPlan = { host: 'm2', steps: [step('units', [{ op: 'service', unit: 'haproxy', action: 'reload' }], 'haproxy must load')], warnings: [] };
    assert.equal(checkExitCode([converged('m1'), pending]), EXIT_CHANGES_PENDING);
    assert.equal(EXIT_CHANGES_PENDING, 3);
  });

  it('converged cluster: report ok, exit 0, text says nothing to do', () => {
    const r = checkReport(spec, ['m3', 'm1', 'm2'].map((h) => ({ host: h, plan: converged(h), current: {} })));
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.hosts.map((h) => h.host), ['m1', 'm2', 'm3']);
    assert.deepEqual(r.changeOrder, []);
    assert.match(checkText(r), /m2 \(backup\): converged, nothing to do/);
    assert.match(checkText(r), /converged: a deploy would change nothing \(exit 0\)/);
  });

  it('pending: packages, files, units and the order the masters would be changed in', () => {
    const m2: HostPlan = {
      host: 'm2',
      steps: [
        step('packages', [{ op: 'run', script: 'apt-get…', description: 'install keepalived, haproxy with apt-get' }], 'keepalived is not installed'),
        step('keepalived-config', [{ op: 'write-file', path: '/etc/keepalived/keepalived.conf', content: 'auth_pass s3cret\npriority 140\n', mode: '0640', unit: 'keepalived' }], 'keepalived.conf is missing'),
        step('units', [{ op: 'service', unit: 'keepalived', action: 'enable-start' }], 'keepalived is not running'),
      ],
      warnings: ['heads up'],
    };
    const m3: HostPlan = { host: 'm3', steps: [step('haproxy-config', [{ op: 'write-file', path: '/etc/h.cfg', content: 'b\n', mode: '0644' }], 'differs')], warnings: [] };
    const r = checkReport(spec, [
      { host: 'm1', plan: converged('m1'), current: {} },
      { host: 'm2', plan: m2, current: {} },
      { host: 'm3', plan: m3, current: { '/etc/h.cfg': 'a\n' } },
    ]);
    assert.equal(r.exitCode, 3);
    assert.deepEqual(r.changeOrder, ['m2', 'm3']);
    const h2 = r.hosts[1]!;
    assert.deepEqual(h2.packages, ['install keepalived, haproxy with apt-get']);
    assert.deepEqual(h2.units, ['keepalived: enable-start']);
    assert.ok(!JSON.stringify(r).includes('s3cret'));
    const text = checkText(r);
    assert.ok(!text.includes('s3cret'));
    assert.match(text, /\+auth_pass \*{8}/);
    assert.match(text, /^ {4}-a$/m);
    assert.match(text, /install packages on m2 at once, then change m2 → m3, one at a time/);
    assert.match(text, /warning: heads up/);
  });
});

describe('check: reading the files that differ', () => {
  it('one script for every path; its output parsed back exactly, missing files as null', () => {
    const s = readFilesScript(['/etc/a b', '/etc/c']);
    assert.match(s, /'\/etc\/a b' \/etc\/c;/);
    const b64 = Buffer.from('x\ny').toString('base64');
    const out = `motd\n@@KHA-FILE + /etc/a b\n${b64}\n@@KHA-FILE - /etc/c\n@@KHA-FILE end\n`;
    assert.deepEqual(parseReadFiles('m1', out), { '/etc/a b': 'x\ny', '/etc/c': null });
    assert.throws(() => parseReadFiles('m1', '@@KHA-FILE + /etc/a\n'), /truncated/);
  });
});
