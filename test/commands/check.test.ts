import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { authDiffers } from '../../src/runner/rollout.js';
import { EXIT_CHANGES_PENDING, checkExitCode, checkReport, checkText, fileDiff, gatherCheck, parseReadFiles, readFilesScript, type CheckReport } from '../../src/commands/check.js';
import { runRollout } from '../../src/runner/rollout.js';
import type { ClusterSpec, HostFacts, HostPlan, HostSpec, PlannedStep, Remote } from '../../src/types.js';
import { cluster } from '../fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook } from '../helpers/fake-host.js';

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

describe('check: a changed vrrp_auth_pass is the managed instance move deploy plans (in-memory masters)', () => {
  const OLD_PASS = 's3cr3tpw'; // cluster()'s
  const NEW_PASS = 'n3wpass';

  /** fc.connect, answering check's read-files command from the fake host's files (the fake knows no `check` command); every script sent is kept. */
  function checkConnect(fc: FakeCluster, scripts: string[]) {
    return async (h: HostSpec): Promise<Remote> => {
      const r = await fc.connect(h);
      return {
        host: r.host,
        get commandCount() {
          return r.commandCount;
        },
        hold: (script, marker, opts) => (scripts.push(script), r.hold(script, marker, opts)),
        close: () => r.close(),
        run: async (script, opts) => {
          scripts.push(script);
          if (!script.startsWith('# kha-deploy check read-files')) return r.run(script, opts);
          const paths = /^for kha_f in (.*); do$/m.exec(script)![1]!.split(/\s+/).map((p) => p.replace(/^'|'$/g, ''));
          const files = fc.host(h.name).files;
          const out = paths.map((p) => (files.has(p) ? `@@KHA-FILE + ${p}\n${Buffer.from(files.get(p)!).toString('base64')}\n` : `@@KHA-FILE - ${p}\n`));
          return { code: 0, signal: null, stdout: `${out.join('')}@@KHA-FILE end\n`, stderr: '' };
        },
      };
    };
  }

  async function check(fc: FakeCluster, spec: ClusterSpec): Promise<{ report: CheckReport; text: string; scripts: string[] }> {
    const scripts: string[] = [];
    const inputs = await gatherCheck({ spec, playbook: fc.playbook, hosts: spec.hosts, connect: checkConnect(fc, scripts), emit: () => {} });
    fc.assertNoSurprises();
    const report = checkReport(spec, inputs);
    return { report, text: checkText(report), scripts };
  }

  /** A converged cluster whose model keeps VRRP instances apart (masters with another auth pass do not hear each other). */
  function running(): FakeCluster {
    const fc = new FakeCluster(cluster(), fastPlaybook({ timeoutSeconds: 0.5 })).converge();
    fc.vrrpHoldOnTie = true;
    fc.vrrpInstances = true;
    assert.deepEqual(fc.vipHolders(), ['master1']);
    return fc;
  }

  it('the order and its reason are those deploy follows: master2, master3 with keepalived stopped, master1 last; the pass never shown', async () => {
    const fc = running();
    const spec = { ...fc.spec, vrrpAuthPass: NEW_PASS };
    const { report, text, scripts } = await check(fc, spec);
    assert.equal(report.exitCode, EXIT_CHANGES_PENDING);
    assert.deepEqual(report.changeOrder, ['master2', 'master3', 'master1']);
    assert.match(report.changeOrderReason, /^the VRRP instance changes \(vrrp_auth_pass \(value hidden\)\): a managed move\. master2, master3 first, each with keepalived stopped \(the VIP stays on master1\), master1 last/);
    assert.match(text, /^order: the VRRP instance changes \(vrrp_auth_pass \(value hidden\)\): a managed move/m);
    // Per master, keepalived as deploy runs it: the non-holders stopped first and started after master1's reload.
    const units = Object.fromEntries(report.hosts.map((h) => [h.host, h.units]));
    for (const h of ['master2', 'master3']) {
      assert.equal(units[h]![0], 'keepalived: stop before the change (VRRP instance move: vrrp_auth_pass (value hidden))', `${h}: ${units[h]!.join('; ')}`);
      assert.equal(units[h]!.at(-1), "keepalived: enable-start after master1's change (joins the new instance with the others)");
      assert.ok(!units[h]!.includes('keepalived: reload'), units[h]!.join('; '));
    }
    assert.deepEqual(units.master1, ['keepalived: reload']);
    // The salted probe went out in the lock command; neither pass appears in anything check printed or sent.
    assert.ok(scripts.some((s) => s.includes('# kha-deploy preflight vrrp-auth ')), 'the auth probe rode in the lock command');
    for (const secret of [OLD_PASS, NEW_PASS]) {
      assert.ok(!text.includes(secret), `${secret} in the text`);
      assert.ok(!JSON.stringify(report).includes(secret), `${secret} in the JSON report`);
      assert.ok(!scripts.some((s) => s.includes(secret)), `${secret} sent to a host`);
    }
    assert.match(text, /only secret values differ/);

    // What deploy prints for the same change: the same order and reason.
    let phase = '';
    const r = await runRollout({ spec, playbook: fc.playbook, hosts: spec.hosts, connect: fc.connect, emit: (e) => void (e.type === 'phase' && e.phase === 'rollout' && (phase = e.message)) });
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(phase, `rolling out in order ${report.changeOrder.join(' → ')} (${report.changeOrderReason})`);
    // And once deployed, check finds nothing to do.
    const again = await check(fc, spec);
    assert.equal(again.report.exitCode, 0, again.text);
  });

  it('the same pass: no instance move (the control: a haproxy-only change keeps the plain running order)', async () => {
    const fc = running();
    const { report } = await check(fc, { ...fc.spec, haproxyBalance: 'leastconn' });
    assert.deepEqual(report.changeOrder, ['master2', 'master3', 'master1']);
    assert.doesNotMatch(report.changeOrderReason, /managed move|vrrp_auth_pass/);
    assert.match(report.changeOrderReason, /^master1 holds the VIP: the other masters first, master1 last$/);
  });

  it('authDiffers: a differing hash counts only when the host printed one and has a keepalived.conf', () => {
    const facts = { keepalivedConf: { priority: 150 } } as unknown as HostFacts;
    assert.equal(authDiffers('a'.repeat(64), facts, 'b'.repeat(64)), true);
    assert.equal(authDiffers('b'.repeat(64), facts, 'b'.repeat(64)), false);
    assert.equal(authDiffers(undefined, facts, 'b'.repeat(64)), false);
    assert.equal(authDiffers('a'.repeat(64), {} as HostFacts, 'b'.repeat(64)), false);
  });
});
