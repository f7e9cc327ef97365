// HostApplier against the in-memory host model (test/helpers/fake-host.ts): which commands go out,
// what the host looks like afterwards, what the error says. Also checks the model itself against
// the real facts fixtures and the planner, so that the rollout tests stand on a faithful host.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { HostApplier } from '../src/apply.js';
import { ConnectError, DeadlineError, HostStepError, InterruptedError } from '../src/errors.js';
import { parseFacts } from '../src/facts.js';
import { planHost, sha256Hex } from '../src/plan.js';
import { renderHaproxy, renderKeepalived } from '../src/render.js';
import type { Operation, PlannedStep, RunEvent } from '../src/types.js';
import { cluster, host } from './fixtures/facts/cluster.js';
import { FakeCluster, UnexpectedCommand, fastPlaybook } from './helpers/fake-host.js';

const APPLIED = '/var/lib/kha-deploy/haproxy.applied';

function step(id: string, ops: Operation[], timeoutMs = 60_000): PlannedStep {
  return { id, title: `step ${id}`, ops, timeoutMs, reason: ops.length ? `${id} needs it` : '' };
}

/** A converged three-master cluster, a connection to master1 and an applier on it. */
function setup() {
  const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
  const h = fc.host('master1');
  const remote = fc.session('master1');
  const events: RunEvent[] = [];
  const applier = new HostApplier({ remote, emit: (e) => events.push(e), keepBackups: fc.playbook.backups });
  const path = fc.playbook.files.haproxy.path;
  const newHaproxy = renderHaproxy({ ...fc.spec, haproxyBalance: 'leastconn' }, fc.playbook);
  const write: Operation = { op: 'write-file', path, content: newHaproxy, mode: '0644', unit: 'haproxy', validate: 'haproxy -c -f {file}' };
  const reload: Operation = { op: 'service', unit: 'haproxy', action: 'reload', recordApplied: sha256Hex(newHaproxy) };
  return { fc, h, remote, events, applier, path, newHaproxy, write, reload };
}

const stepEnds = (events: RunEvent[]) => events.flatMap((e) => (e.type === 'step-end' ? [`${e.step}:${e.status}`] : []));

describe('HostApplier on a fake host', () => {
  it('writes a file (keeping a backup) and reloads the unit, which then runs the new config and records its hash', async () => {
    const { fc, h, remote, events, applier, path, newHaproxy, write, reload } = setup();
    const old = h.files.get(path)!;
    assert.equal(await applier.step(step('haproxy-config', [write])), 'changed');
    assert.equal(await applier.step(step('units', [reload])), 'changed');

    assert.deepEqual(h.tags(), ['write /etc/haproxy/haproxy.cfg', 'service haproxy reload']);
    assert.equal(h.commandsOf('write')[0]!.stdin, newHaproxy, 'the content travels on stdin');
    assert.equal(h.files.get(path), newHaproxy);
    assert.deepEqual(h.backups(path).map((b) => h.files.get(b)), [old]);
    assert.equal(h.units.haproxy.loaded, newHaproxy);
    assert.equal(h.files.get(APPLIED), `${sha256Hex(newHaproxy)}\n`);
    assert.equal(remote.commandCount, 2);
    assert.deepEqual(stepEnds(events), ['haproxy-config:changed', 'units:changed']);
    fc.assertNoSurprises();
  });

  it('rolls back when the unit does not come up after reload: previous config restored, unit restarted, error says so', async () => {
    const { fc, h, events, applier, path, write, reload } = setup();
    const old = h.files.get(path)!;
    const pid = h.units.haproxy.mainPid;
    h.failService('haproxy', 'reload', { message: "haproxy[4242]: [ALERT] (4242) : Starting frontend kube-apiserver: cannot bind socket (Address already in use) [10.0.0.100:8443]" });

    await applier.step(step('haproxy-config', [write]));
    await assert.rejects(applier.step(step('units', [reload])), (err: unknown) => {
      assert.ok(err instanceof HostStepError);
      assert.equal(err.host, 'master1');
      assert.equal(err.step, 'units');
      assert.match(err.message, /^haproxy did not come up after reload; the previous config was restored and haproxy restarted with it$/);
      assert.match(err.seen ?? '', /haproxy is not active after reload/);
      assert.match(err.seen ?? '', /--- journalctl -u haproxy:\n[^]*cannot bind socket \(Address already in use\)/);
      return true;
    });

    assert.deepEqual(h.tags(), ['write /etc/haproxy/haproxy.cfg', 'service haproxy reload', 'journal haproxy', 'rollback haproxy /etc/haproxy/haproxy.cfg']);
    assert.equal(h.files.get(path), old, 'the previous config is back');
    assert.equal(h.units.haproxy.active, 'active');
    assert.equal(h.units.haproxy.loaded, old, 'haproxy runs the previous config');
    assert.notEqual(h.units.haproxy.mainPid, pid, 'haproxy was restarted');
    assert.equal(h.files.has(APPLIED), false, 'the state file no longer claims a loaded config: the next run reloads');
    assert.deepEqual(stepEnds(events), ['haproxy-config:changed', 'units:failed']);
    fc.assertNoSurprises();
  });

  it('says nothing was restored when the restart with the previous config fails too', async () => {
    const { h, applier, write, reload } = setup();
    h.failService('haproxy', 'any', { times: 2 });
    await applier.step(step('haproxy-config', [write]));
    await assert.rejects(applier.step(step('units', [reload])), (err: unknown) => {
      assert.ok(err instanceof HostStepError);
      assert.equal(err.message, 'haproxy did not come up after reload');
      return true;
    });
    assert.equal(h.commandsOf('rollback').length, 1);
    assert.equal(h.units.haproxy.active, 'failed');
  });

  it('has nothing to roll back after a first install (no previous file): no rollback command, no claim', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const h = fc.host('master1');
    h.packages.add('keepalived').add('haproxy');
    h.units.keepalived = { active: 'inactive', enabled: 'enabled', mainPid: 0, loaded: null };
    h.failService('keepalived', 'enable-start');
    const path = fc.playbook.files.keepalived.path;
    const content = renderKeepalived(fc.spec, host(fc.spec, 'master1'), 'ens192', fc.playbook);
    const applier = new HostApplier({ remote: fc.session('master1'), emit: () => undefined, keepBackups: 5 });
    await applier.step(step('keepalived-config', [{ op: 'write-file', path, content, mode: '0600', unit: 'keepalived' }]));
    await assert.rejects(applier.step(step('units', [{ op: 'service', unit: 'keepalived', action: 'enable-start', recordApplied: sha256Hex(content) }])), /^HostStepError: keepalived did not come up after enable-start$/);
    assert.deepEqual(h.kinds(), ['write', 'service', 'journal']);
    assert.equal(h.files.get(path), content);
  });

  it('a validator rejection leaves the old file, touches no service, and masks the secrets in what the host printed', async () => {
    const { fc, h, applier } = setup();
    const path = fc.playbook.files.keepalived.path;
    const old = h.files.get(path)!;
    const content = renderKeepalived({ ...fc.spec, advertInt: 2 }, host(fc.spec, 'master1'), 'ens192', fc.playbook);
    h.rejectWrite(path, 'Keepalived_vrrp: (Line 31) Unknown keyword auth_pass s3cr3tpw');
    const op: Operation = { op: 'write-file', path, content, mode: '0600', unit: 'keepalived' };
    await assert.rejects(applier.step(step('keepalived-config', [op])), (err: unknown) => {
      assert.ok(err instanceof HostStepError);
      assert.match(err.message, /failed validation on the host; the old file stays in place and the service was not touched/);
      assert.match(err.seen ?? '', /Unknown keyword auth_pass/);
      assert.doesNotMatch(err.seen ?? '', /s3cr3tpw/);
      return true;
    });
    assert.equal(h.files.get(path), old);
    assert.deepEqual(h.backups(path), []);
    assert.deepEqual(h.kinds(), ['write']);
  });

  it('a failing package install reports the package manager and changes nothing else', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const h = fc.host('master1').failPackages('E: Unable to locate package keepalived');
    const facts = parseFacts('master1', h.factsText(), fc.spec.vip);
    const plan = planHost(fc.spec, host(fc.spec, 'master1'), facts, fc.playbook);
    const applier = new HostApplier({ remote: fc.session('master1'), emit: () => undefined, keepBackups: 5 });
    await assert.rejects(applier.step(plan.steps.find((s) => s.id === 'packages')!), (err: unknown) => {
      assert.ok(err instanceof HostStepError);
      assert.match(err.message, /install keepalived and haproxy with apt-get failed \(exit 100\)/);
      assert.match(err.seen ?? '', /Unable to locate package/);
      return true;
    });
    assert.deepEqual(h.tags(), ['packages apt keepalived haproxy']);
    assert.equal(h.packages.size, 0);
  });

  it('a step with no ops reports ok and sends nothing', async () => {
    const { remote, events, applier, h } = setup();
    assert.equal(await applier.step(step('rundir', [])), 'ok');
    assert.equal(remote.commandCount, 0);
    assert.deepEqual(h.commands, []);
    assert.deepEqual(
      events.map((e) => e.type),
      ['step-start', 'step-end'],
    );
    assert.deepEqual(stepEnds(events), ['rundir:ok']);
  });

  // HEAD's HostApplier sends no RunOptions.timeoutMs; src/apply.ts is being changed to pass the step's.
  it('a command that hangs is ended at the step deadline (DeadlineError naming the step)', async () => {
    const { fc, h, applier, write } = setup();
    fc.hangSafetyMs = 200;
    h.hang('write', { output: 'waiting for the validator' });
    await assert.rejects(applier.step(step('haproxy-config', [write], 50)), (err: unknown) => {
      assert.ok(err instanceof DeadlineError, String(err));
      assert.equal(err.step, 'haproxy-config');
      assert.equal(err.timeoutMs, 50);
      return true;
    });
    fc.assertNoSurprises();
  });
});

describe('the fake host model', () => {
  it('prints the facts of a fresh Debian 12 master byte for byte like the real one (test/fixtures/facts/debian12-fresh.txt)', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook(), {
      hosts: { master1: { interfaces: [{ name: 'lo', addrs: ['127.0.0.1/8', '::1/128'] }, { name: 'ens192', addrs: ['10.0.0.11/24', 'fe80::250:56ff:fe9a:1b2c/64'] }] } },
    });
    const real = readFileSync(new URL('./fixtures/facts/debian12-fresh.txt', import.meta.url), 'utf8');
    assert.equal(fc.host('master1').factsText(), real);
  });

  it('converge() gives facts the planner finds nothing to do on, and the VIP on the highest priority', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    for (const h of fc.all()) {
      const facts = parseFacts(h.name, h.factsText(), fc.spec.vip);
      const plan = planHost(fc.spec, h.spec, facts, fc.playbook);
      assert.deepEqual(plan.steps.filter((s) => s.ops.length > 0).map((s) => s.id), [], h.name);
      assert.deepEqual(facts.vipOn, h.name === 'master1' ? ['ens192'] : []);
    }
    assert.deepEqual(fc.vipHolders(), ['master1']);
  });

  it('moves the VIP by the election: the track script (haproxy), then priority from the loaded config', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    fc.host('master1').units.haproxy.active = 'failed';
    assert.deepEqual(fc.vipHolders(), ['master2']);
    fc.host('master1').units.haproxy.active = 'active';
    fc.host('master3').units.keepalived.loaded = fc.host('master3').units.keepalived.loaded!.replace(/priority \d+/, 'priority 200');
    assert.deepEqual(fc.vipHolders(), ['master3']);
    fc.forceVip(['master1', 'master2']);
    assert.deepEqual(fc.vipHolders(), ['master1', 'master2']);
  });

  it('a rocky master installs with dnf and leaves the units disabled; nothing recreates /run/haproxy', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook(), { hosts: { master3: { os: 'rocky' } } });
    const h = fc.host('master3');
    const before = parseFacts('master3', h.factsText(), fc.spec.vip);
    assert.equal(before.pkgManager, 'dnf');
    assert.equal(before.osFamily, 'rhel');
    const r = await fc.session('master3').run('# kha-deploy packages dnf keepalived haproxy\ndnf install -y keepalived haproxy');
    assert.equal(r.code, 0);
    const after = parseFacts('master3', h.factsText(), fc.spec.vip);
    assert.deepEqual(after.installed, { keepalived: true, haproxy: true, curl: true });
    assert.equal(after.units.haproxy.enabled, 'disabled');
    assert.equal(after.runDirExists, false);
    assert.equal(after.runDirPersistent, false);
  });

  it('holds the lock: a second connection is refused with exit 75 and the owner until release()', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const lock = '# kha-deploy lock /run/lock\n# kha-deploy facts\n…';
    const first = await fc.session('master1').hold(lock, '@@KHA-READY');
    assert.ok('release' in first);
    assert.equal(parseFacts('master1', first.output, fc.spec.vip).host, 'master1');
    const second = await fc.session('master1').hold(lock, '@@KHA-READY');
    assert.ok(!('release' in second));
    assert.equal(second.code, 75);
    assert.match(second.stderr, /another kha-deploy run holds \/run\/lock\/kha-deploy\.lock/);
    await first.release();
    assert.equal(fc.host('master1').lockHolder, null);
    assert.equal(fc.host('master1').lockReleases, 1);
  });

  it('rejects a command it does not know, loudly', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    await assert.rejects(fc.session('master1').run('# kha-deploy reboot now\nreboot'), UnexpectedCommand);
    await assert.rejects(fc.session('master1').run('systemctl restart haproxy'), UnexpectedCommand);
    assert.equal(fc.unexpected.length, 2);
    assert.throws(() => fc.assertNoSurprises(), /unknown command tag 'reboot'/);
  });

  it('loses the connection at the Nth command: that command and every later one reject with ConnectError', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    fc.host('master2').loseConnectionAt(2);
    const r = fc.session('master2');
    assert.equal((await r.run('# kha-deploy facts\n…')).code, 0);
    await assert.rejects(r.run('# kha-deploy journal keepalived\n…'), (err: unknown) => err instanceof ConnectError && /was lost/.test(err.message));
    await assert.rejects(r.run('# kha-deploy facts\n…'), ConnectError);
    assert.equal(r.commandCount, 2, 'a dead connection sends (and counts) nothing more');
  });

  it('a hung command ends at its deadline (DeadlineError) or on abort (InterruptedError)', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const h = fc.host('master1').hang('journal', { times: 2, output: 'partial' });
    const r = fc.session('master1');
    await assert.rejects(r.run('# kha-deploy journal haproxy\n…', { timeoutMs: 20 }), (err: unknown) => err instanceof DeadlineError && err.timeoutMs === 20 && err.seen === 'partial');
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 10);
    await assert.rejects(r.run('# kha-deploy journal haproxy\n…', { signal: ac.signal }), InterruptedError);
    assert.equal((await r.run('# kha-deploy journal haproxy\n…')).code, 0, 'only the next two hang');
    assert.equal(h.commands.length, 3);
  });
});
