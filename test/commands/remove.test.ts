// kha-deploy remove: the pure planner (what each file and unit needs, the order), the scripts run
// under the local sh on scratch files, and runRemove against the in-memory masters (fake-host.ts):
// holder last, the VIP held until the end, stop at the first failure, idempotent, deploy again.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  fileRemoval,
  packagesScript,
  parseRemovalFacts,
  planRemoval,
  removalFactsScript,
  removalOrder,
  removeEventLine,
  removeText,
  runRemove,
  unitsScript,
  type FileFacts,
  type RemoveEvent,
  type RemoveResult,
} from '../../src/commands/remove.js';
import { HostStepError, InterruptedError, LockedError, ManyErrors } from '../../src/errors.js';
import { STATE_DIR, parseFacts } from '../../src/facts.js';
import type { Playbook } from '../../src/playbook.js';
import { runRollout } from '../../src/runner/rollout.js';
import type { ClusterSpec } from '../../src/types.js';
import { cluster } from '../fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook, type FakeHost } from '../helpers/fake-host.js';

const HAPROXY = '/etc/haproxy/haproxy.cfg';
const KEEPALIVED = '/etc/keepalived/keepalived.conf';
const TMPFILES = '/etc/tmpfiles.d/kha-deploy-haproxy.conf';
const PACKAGE_DEFAULT = '# haproxy.cfg shipped by the package\nglobal\n\tlog /dev/log local0\n';
const OURS = '# Rendered by kha-deploy from playbooks/templates/haproxy.cfg.tmpl.\nglobal\n';

// ---------- scripts under the local sh, on scratch paths ----------

/** The packaged playbook with its managed files moved into a scratch directory. */
function scratchPlaybook(): { pb: Playbook; dir: string; state: string; sh: (script: string) => ReturnType<typeof spawnSync> } {
  const dir = mkdtempSync(join(tmpdir(), 'kha-remove-'));
  const pb = fastPlaybook();
  const files = {
    haproxy: { ...pb.files.haproxy, path: join(dir, 'haproxy', 'haproxy.cfg') },
    keepalived: { ...pb.files.keepalived, path: join(dir, 'keepalived', 'keepalived.conf') },
    tmpfiles: { ...pb.files.tmpfiles, path: join(dir, 'tmpfiles.d', 'kha-deploy-haproxy.conf') },
  };
  for (const f of Object.values(files)) mkdirSync(join(f.path, '..'), { recursive: true });
  const state = join(dir, 'state');
  return {
    pb: { ...pb, files },
    dir,
    state,
    sh: (script: string) => spawnSync('sh', ['-c', script.replaceAll(STATE_DIR, state)], { encoding: 'utf8' }),
  };
}

const file = (path: string, now: FileFacts['now'], original: FileFacts['original'], backups = 0): FileFacts => ({ path, now, original, backups });

describe('remove: the removal facts, read by the script on a real file tree', () => {
  it('records, inferred originals, what each file is now, its backups and the state directory', () => {
    const { pb, state, sh } = scratchPlaybook();
    const [ha, ka, tf] = [pb.files.haproxy.path, pb.files.keepalived.path, pb.files.tmpfiles.path];
    writeFileSync(ha, OURS);
    writeFileSync(`${ha}.kha-original`, PACKAGE_DEFAULT);
    writeFileSync(`${ha}.kha-backup-20240101T000000.000000001Z`, PACKAGE_DEFAULT);
    writeFileSync(ka, OURS);
    writeFileSync(`${ka}.kha-backup-20240101T000000.000000001Z`, 'the operator\'s own keepalived.conf\n');
    writeFileSync(tf, 'd /run/haproxy 0755 root root -\n');
    mkdirSync(state);
    const r = sh(removalFactsScript(pb));
    assert.equal(r.status, 0, String(r.stderr));
    const facts = parseRemovalFacts('m1', `login banner\n${r.stdout}`, pb);
    assert.deepEqual(facts, {
      files: [
        file(ha, 'ours', { kind: 'recorded' }, 1),
        file(ka, 'ours', { kind: 'copy', from: `${ka}.kha-backup-20240101T000000.000000001Z` }, 1),
        file(tf, 'ours', { kind: 'absent' }),
      ],
      stateDir: true,
    });
  });

  it('a host kha-deploy never touched: everything missing, no state', () => {
    const { pb, sh } = scratchPlaybook();
    const r = sh(removalFactsScript(pb));
    const facts = parseRemovalFacts('m1', String(r.stdout), pb);
    assert.deepEqual(facts.files.map((f) => [f.now, f.original.kind, f.backups]), [['missing', 'absent', 0], ['missing', 'absent', 0], ['missing', 'absent', 0]]);
    assert.equal(facts.stateDir, false);
  });

  it('refuses output it does not understand, and truncated output, naming the host', () => {
    const pb = fastPlaybook();
    assert.throws(() => parseRemovalFacts('m2', '@@KHA-REMOVE 1\nremove.state=no\n@@KHA-REMOVE end\n', pb), /m2.*say nothing about \/etc\/haproxy\/haproxy\.cfg/);
    assert.throws(() => parseRemovalFacts('m2', '@@KHA-REMOVE 1\nwhat is this\n@@KHA-REMOVE end\n', pb), /m2: unexpected line.*what is this/);
    assert.throws(() => parseRemovalFacts('m2', '@@KHA-REMOVE 1\nremove.state=no\n', pb), /m2: the removal facts are truncated/);
    assert.throws(() => parseRemovalFacts('m2', 'kha-facts 1\n', pb), /no '@@KHA-REMOVE 1' line/);
  });
});

describe('remove: what each managed file needs (pure)', () => {
  it('a record is put back byte for byte (whatever the file is now), then the record and the backups go', () => {
    const r = fileRemoval('m1', file(HAPROXY, 'ours', { kind: 'recorded' }, 2), 'haproxy');
    assert.equal(r.restoreFrom, `${HAPROXY}.kha-original`);
    assert.equal(r.delete, undefined);
    assert.equal(r.cleanup, true);
    assert.deepEqual(r.actions, [`restored ${HAPROXY} as it was before kha-deploy's first write`, `removed its record and 2 backups of ${HAPROXY}`]);
    assert.equal(fileRemoval('m1', file(HAPROXY, 'other', { kind: 'recorded' }), 'haproxy').restoreFrom, `${HAPROXY}.kha-original`);
  });

  it('"there was none" deletes ours; when it is gone already, only the marker goes', () => {
    const r = fileRemoval('m1', file(KEEPALIVED, 'ours', { kind: 'recorded-absent' }));
    assert.equal(r.delete, true);
    assert.deepEqual(r.actions, [`removed ${KEEPALIVED} (there was none before kha-deploy)`, `removed its record of ${KEEPALIVED}`]);
    const gone = fileRemoval('m1', file(KEEPALIVED, 'missing', { kind: 'recorded-absent' }));
    assert.equal(gone.delete, undefined);
    assert.deepEqual(gone.actions, [`removed its record of ${KEEPALIVED}`]);
  });

  it('no record (deployed by an older kha-deploy): the oldest backup when it is not ours; delete ours when kha-deploy created it', () => {
    const b = `${HAPROXY}.kha-backup-20240101T000000.000000001Z`;
    const r = fileRemoval('m1', file(HAPROXY, 'ours', { kind: 'copy', from: b }, 3), 'haproxy');
    assert.equal(r.restoreFrom, b);
    assert.match(r.actions[0]!, /restored \/etc\/haproxy\/haproxy\.cfg from its oldest backup .*no record/);
    assert.equal(r.warnings.length, 0);
    const created = fileRemoval('m1', file(KEEPALIVED, 'ours', { kind: 'absent' }));
    assert.equal(created.delete, true);
    assert.equal(created.cleanup, false);
  });

  it('no record and the original cannot be told: ours goes, with a warning saying how to get the package default back', () => {
    const r = fileRemoval('m3', file(HAPROXY, 'ours', { kind: 'unknown' }, 5), 'haproxy');
    assert.equal(r.delete, true);
    assert.equal(r.cleanup, true);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0]!, /no copy of \/etc\/haproxy\/haproxy\.cfg from before kha-deploy's first write is left on m3/);
    assert.match(r.warnings[0]!, /apt-get install --reinstall -o Dpkg::Options::=--force-confmiss haproxy/);
  });

  it('no record and the file is not ours: left in place (changed by hand, or never ours); nothing at all to do when clean', () => {
    const byHand = fileRemoval('m1', file(HAPROXY, 'other', { kind: 'copy', from: `${HAPROXY}.kha-backup-X` }, 1), 'haproxy');
    assert.equal(byHand.restoreFrom, undefined);
    assert.equal(byHand.delete, undefined);
    assert.match(byHand.warnings[0]!, /changed by hand since kha-deploy wrote it: left as it is/);
    assert.equal(byHand.cleanup, true, 'its backups still go');
    const never = fileRemoval('m1', file(HAPROXY, 'other', { kind: 'copy', from: HAPROXY }), 'haproxy');
    assert.deepEqual([never.restoreFrom, never.delete, never.cleanup, never.actions, never.warnings], [undefined, undefined, false, [], []]);
    const missing = fileRemoval('m1', file(TMPFILES, 'missing', { kind: 'absent' }));
    assert.deepEqual(missing.actions, []);
  });
});

describe('remove: the scripts, run by the local sh', () => {
  it('configs: the original comes back byte for byte with its mode and times; ours, records and backups go; no temp file is left', () => {
    const { pb, dir, state, sh } = scratchPlaybook();
    const [ha, ka, tf] = [pb.files.haproxy.path, pb.files.keepalived.path, pb.files.tmpfiles.path];
    const original = 'global\n\tlog /dev/log local0\n# ünïcode and no final newline';
    writeFileSync(`${ha}.kha-original`, original, { mode: 0o640 });
    spawnSync('touch', ['-d', '2021-02-03 04:05:06', `${ha}.kha-original`]);
    const mtime = statSync(`${ha}.kha-original`).mtimeMs;
    writeFileSync(ha, OURS);
    writeFileSync(`${ha}.kha-backup-20240101T000000.000000001Z`, 'x');
    writeFileSync(`${ha}.kha-backup-20240102T000000.000000001Z`, 'y');
    writeFileSync(ka, OURS);
    writeFileSync(`${ka}.kha-original-absent`, '');
    writeFileSync(tf, 'd /run/haproxy 0755 root root -\n');
    writeFileSync(`${tf}.kha-original-absent`, '');
    mkdirSync(state);
    writeFileSync(join(state, 'haproxy.applied'), 'abc\n');
    const facts = parseRemovalFacts('m1', String(sh(removalFactsScript(pb)).stdout), pb);
    const spec = cluster();
    const hostFacts = parseFacts('master1', new FakeCluster(spec, pb).converge().host('master1').factsText(), spec.vip);
    const plan = planRemoval(spec, spec.hosts[0]!, hostFacts, facts, pb, { purge: false });
    for (const st of plan.steps) if (st.id !== 'units' && st.script) assert.equal(sh(st.script).status, 0, `${st.id}: ${sh(st.script).stderr}`);
    assert.equal(readFileSync(ha, 'utf8'), original);
    assert.equal(statSync(ha).mode & 0o777, 0o640);
    assert.equal(statSync(ha).mtimeMs, mtime);
    assert.deepEqual(readdirSync(join(dir, 'haproxy')), ['haproxy.cfg']);
    assert.deepEqual(readdirSync(join(dir, 'keepalived')), []);
    assert.deepEqual(readdirSync(join(dir, 'tmpfiles.d')), []);
    assert.equal(existsSync(state), false);
    // Run again: the facts now plan nothing.
    const again = planRemoval(spec, spec.hosts[0]!, hostFacts, parseRemovalFacts('m1', String(sh(removalFactsScript(pb)).stdout), pb), pb, { purge: false });
    assert.deepEqual(again.steps.filter((s) => s.id !== 'units').map((s) => [s.id, s.script, s.actions]), [['configs', null, []], ['tmpfiles', null, []], ['state', null, []]]);
  });

  it('units: keepalived stops before haproxy, each is checked and disabled; names are quoted', () => {
    const s = unitsScript([{ unit: 'keepalived', stop: true, disable: true }, { unit: 'haproxy', stop: false, disable: true }]);
    const lines = s.split('\n');
    assert.equal(lines[0], '# kha-deploy remove units keepalived haproxy');
    const stopK = lines.findIndex((l) => l === 'systemctl stop keepalived.service');
    const disH = lines.findIndex((l) => l.startsWith('systemctl disable haproxy.service'));
    assert.ok(stopK > 0 && disH > stopK);
    assert.ok(!lines.includes('systemctl stop haproxy.service'), 'an inactive unit is not stopped');
    assert.match(s, /if systemctl is-active --quiet keepalived\.service; then echo "keepalived is still active after systemctl stop" >&2; exit 3; fi/);
    assert.equal(lines.at(-1), 'ip -o addr show 2>/dev/null || :');
  });

  it('packages (apt): refuses, removing nothing, when apt-get would take another package along; purges otherwise', () => {
    const bin = mkdtempSync(join(tmpdir(), 'kha-apt-'));
    const log = join(bin, 'log');
    writeFileSync(
      join(bin, 'apt-get'),
      `#!/bin/sh\necho "apt-get $*" >> ${log}\nif [ "$1" = -s ]; then printf 'Reading package lists...\\nPurg haproxy [2.6.12-1]\\nPurg keepalived [1:2.2.7-1]\\n'; [ -f ${bin}/dependent ] && echo 'Purg kube-lb-meta [1.0]'; fi\nexit 0\n`,
    );
    chmodSync(join(bin, 'apt-get'), 0o755);
    const run = () => spawnSync('sh', ['-c', packagesScript('apt', ['keepalived', 'haproxy'])], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    const ok = run();
    assert.equal(ok.status, 0, ok.stderr);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['apt-get -s purge keepalived haproxy', 'apt-get purge -y -q -o DPkg::Lock::Timeout=300 keepalived haproxy']);
    writeFileSync(log, '');
    writeFileSync(join(bin, 'dependent'), '');
    const refused = run();
    assert.equal(refused.status, 3);
    assert.match(refused.stderr, /apt-get would also remove: kube-lb-meta \(they depend on keepalived or haproxy\); nothing was removed/);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['apt-get -s purge keepalived haproxy']);
  });

  it('packages (dnf/yum): rpm -e --test first, then remove; never curl', () => {
    const s = packagesScript('dnf', ['keepalived', 'haproxy']);
    assert.deepEqual(s.split('\n').slice(1).map((l) => l.split(' ').slice(0, 3).join(' ')), ['rpm -e --test', 'dnf remove -y']);
    assert.ok(!s.includes('curl'));
  });
});

describe('remove: the order (pure)', () => {
  const spec = cluster();
  it('masters without the VIP first, lowest priority first; the holder last', () => {
    assert.deepEqual(removalOrder(spec, spec.order, ['master1']), ['master3', 'master2', 'master1']);
    assert.deepEqual(removalOrder(spec, spec.order, ['master2']), ['master3', 'master1', 'master2']);
  });
  it('nobody holds it: lowest priority first; split brain: every holder after the others; --limit: only those', () => {
    assert.deepEqual(removalOrder(spec, spec.order, []), ['master3', 'master2', 'master1']);
    assert.deepEqual(removalOrder(spec, spec.order, ['master1', 'master3']), ['master2', 'master3', 'master1']);
    assert.deepEqual(removalOrder(spec, ['master1', 'master3'], ['master1']), ['master3', 'master1']);
  });
});

// ---------- runRemove against fake masters ----------

interface Run {
  result: RemoveResult;
  events: RemoveEvent[];
}

async function remove(fc: FakeCluster, o: { purge?: boolean; spec?: ClusterSpec; hosts?: string[]; signal?: AbortSignal; onEvent?: (e: RemoveEvent) => void } = {}): Promise<Run> {
  const spec = o.spec ?? fc.spec;
  const events: RemoveEvent[] = [];
  const result = await runRemove({
    spec,
    playbook: fc.playbook,
    hosts: spec.hosts.filter((h) => !o.hosts || o.hosts.includes(h.name)),
    connect: fc.connect,
    purge: o.purge ?? false,
    emit: (e) => {
      events.push(e);
      o.onEvent?.(e);
    },
    ...(o.signal ? { signal: o.signal } : {}),
  });
  fc.assertNoSurprises();
  for (const h of fc.all()) assert.equal(h.lockHolder, null, `${h.name} still locked`);
  for (const r of fc.remotes) assert.ok(r.closed || r.lost, `connection #${r.id} to ${r.host} left open`);
  return { result, events };
}

/** Fresh Debian masters deployed by kha-deploy (so the originals were kept aside by the writes). */
async function deployed(): Promise<FakeCluster> {
  const fc = new FakeCluster(cluster(), fastPlaybook());
  const r = await runRollout({ spec: fc.spec, playbook: fc.playbook, hosts: fc.spec.hosts, connect: fc.connect, emit: () => undefined });
  assert.equal(r.error, undefined, String(r.error));
  assert.deepEqual(fc.vipHolders(), ['master1']);
  deployedUpTo.set(fc, fc.log.length);
  return fc;
}

const deployedUpTo = new WeakMap<FakeCluster, number>();
/** Tags of the commands `h` received after deployed() returned. */
const tagsAfterDeploy = (fc: FakeCluster, h: string) =>
  fc.host(h).commands.filter((c) => c.seq >= (deployedUpTo.get(fc) ?? 0)).map((c) => [c.kind, ...c.args].join(' '));
const kindsAfterDeploy = (fc: FakeCluster, h: string) => tagsAfterDeploy(fc, h).map((t) => t.split(' ')[0]);

/** Nothing of kha-deploy is left on the host: units stopped and disabled, configs as before, no record, backup or state. */
function assertClean(h: FakeHost): void {
  for (const u of ['keepalived', 'haproxy'] as const) {
    assert.equal(h.units[u].active, 'inactive', `${h.name} ${u}`);
    assert.notEqual(h.units[u].enabled, 'enabled', `${h.name} ${u}`);
  }
  const leftovers = [...h.files.keys()].filter((f) => /\.kha-(original|backup|tmp)/.test(f) || f.startsWith(`${STATE_DIR}/`) || f === TMPFILES);
  assert.deepEqual(leftovers, [], `${h.name}: kha-deploy files left`);
}

const recapOf = (r: RemoveResult) => Object.fromEntries(r.report.recap.map((x) => [x.host, { ok: x.ok, changed: x.changed, unreachable: x.unreachable, failed: x.failed }]));

describe('runRemove on fake masters', () => {
  it('backups first, lowest priority first, the holder last; the VIP stays on it until its own keepalived stops', async () => {
    const fc = await deployed();
    const seen: string[] = [];
    const { result, events } = await remove(fc, {
      onEvent: (e) => {
        if (e.type === 'remove-step' && e.step === 'units') seen.push(`${e.host}: VIP on ${fc.vipHolders().join(',') || 'nobody'}`);
      },
    });
    assert.equal(result.error, undefined, String(result.error));
    assert.deepEqual(result.report.order, ['master3', 'master2', 'master1']);
    assert.deepEqual(seen, ['master3: VIP on master1', 'master2: VIP on master1', 'master1: VIP on nobody']);
    // Each master is done completely before the next one gets any command.
    const changes = fc.logOf('remove').map((c) => c.host);
    assert.deepEqual([...new Set(changes)], ['master3', 'master2', 'master1']);
    assert.deepEqual(changes, [...changes].sort((a, b) => result.report.order.indexOf(a) - result.report.order.indexOf(b)));
    assert.deepEqual(tagsAfterDeploy(fc, 'master1'), [
      'lock /run/lock',
      'remove units keepalived haproxy',
      'remove configs /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf',
      'remove state /var/lib/kha-deploy',
    ]);
    for (const h of fc.all()) {
      assertClean(h);
      assert.equal(h.files.get(HAPROXY), PACKAGE_DEFAULT, `${h.name}: the package's haproxy.cfg is back`);
      assert.equal(h.files.has(KEEPALIVED), false, `${h.name}: there was no keepalived.conf before`);
      assert.ok(h.installed('keepalived') && h.installed('haproxy'), 'without --purge the packages stay');
    }
    assert.deepEqual(fc.vipHolders(), []);
    assert.deepEqual(result.report.vipHoldersBefore, ['master1']);
    assert.deepEqual(result.report.vipHolders, []);
    assert.equal(result.report.vipReleasedBy, 'master1');
    assert.deepEqual(recapOf(result), {
      master3: { ok: 1, changed: 3, unreachable: 0, failed: 0 },
      master2: { ok: 1, changed: 3, unreachable: 0, failed: 0 },
      master1: { ok: 1, changed: 3, unreachable: 0, failed: 0 },
    });
    assert.deepEqual(result.report.hosts.map((h) => [h.host, h.result, h.heldVip]), [['master3', 'removed', false], ['master2', 'removed', false], ['master1', 'removed', true]]);
    const text = events.map((e) => removeEventLine(e, false)).filter((l) => l !== undefined).join('\n');
    assert.match(text, /^remove \/inventory\.ini: VIP 10\.0\.0\.100 is on master1, removed last; order master3 → master2 → master1$/m);
    assert.match(text, /^-- master1 \(primary, holds the VIP\)$/m);
    assert.match(text, /^\[master1\]   - released the VIP 10\.0\.0\.100$/m);
    assert.match(text, /^\[master3\]   - restored \/etc\/haproxy\/haproxy\.cfg as it was before kha-deploy's first write$/m);
    assert.match(text, /^\[master3\]   - removed \/etc\/keepalived\/keepalived\.conf \(there was none before kha-deploy\)$/m);
    const recap = removeText({ ...result.report, durationMs: 1234 });
    assert.match(recap, /^ {2}master3 +ok=1 +changed=3 +unreachable=0 +failed=0$/m);
    assert.match(recap, /^VIP 10\.0\.0\.100 released: on no master since master1, the last one, stopped keepalived$/m);
    assert.match(recap, /^removed in 1\.2s$/m);
  });

  it('a second remove changes nothing: one command per master (lock + facts), changed=0, exit 0', async () => {
    const fc = await deployed();
    await remove(fc);
    const before = fc.all().map((h) => h.snapshot());
    const count = fc.log.length;
    const { result, events } = await remove(fc);
    assert.equal(result.error, undefined);
    assert.equal(result.report.exitCode, 0);
    assert.deepEqual(fc.all().map((h) => h.snapshot()), before);
    assert.deepEqual(fc.log.slice(count).map((c) => c.kind), ['lock', 'lock', 'lock']);
    for (const r of Object.values(recapOf(result))) assert.deepEqual(r, { ok: 4, changed: 0, unreachable: 0, failed: 0 });
    assert.deepEqual(result.report.hosts.map((h) => h.result), ['nothing to do', 'nothing to do', 'nothing to do']);
    assert.match(removeText({ ...result.report, durationMs: 10 }), /^nothing to remove: kha-deploy's setup is not on these masters/m);
    assert.match(events.map((e) => removeEventLine(e, false) ?? '').join('\n'), /^\[master2\] nothing to remove$/m);
  });

  it('a deploy after a remove converges (and records the originals again)', async () => {
    const fc = await deployed();
    await remove(fc);
    const r = await runRollout({ spec: fc.spec, playbook: fc.playbook, hosts: fc.spec.hosts, connect: fc.connect, emit: () => undefined });
    assert.equal(r.error, undefined, String(r.error));
    assert.deepEqual(fc.vipHolders(), ['master1']);
    for (const h of fc.all()) {
      assert.equal(h.files.get(`${HAPROXY}.kha-original`), PACKAGE_DEFAULT);
      assert.equal(h.files.get(`${KEEPALIVED}.kha-original-absent`), '');
    }
    const again = await runRollout({ spec: fc.spec, playbook: fc.playbook, hosts: fc.spec.hosts, connect: fc.connect, emit: () => undefined });
    assert.ok(again.recap.every((x) => x.changed === 0), JSON.stringify(again.recap));
  });

  it('--purge also removes keepalived and haproxy (apt purge: the package config goes too), never curl; a second one changes nothing', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook(), { hosts: { master1: { curl: false }, master2: { curl: false }, master3: { curl: false } } });
    const d = await runRollout({ spec: fc.spec, playbook: fc.playbook, hosts: fc.spec.hosts, connect: fc.connect, emit: () => undefined });
    assert.equal(d.error, undefined);
    const { result } = await remove(fc, { purge: true });
    assert.equal(result.error, undefined, String(result.error));
    for (const h of fc.all()) {
      assert.deepEqual(h.tags().filter((t) => t.startsWith('remove packages')), ['remove packages apt keepalived haproxy']);
      assert.equal(h.installed('keepalived') || h.installed('haproxy'), false);
      assert.equal(h.installed('curl'), true, 'curl stays');
      assertClean(h);
    }
    assert.deepEqual(recapOf(result).master1, { ok: 1, changed: 4, unreachable: 0, failed: 0 });
    const again = await remove(fc, { purge: true });
    for (const r of Object.values(recapOf(again.result))) assert.deepEqual(r, { ok: 5, changed: 0, unreachable: 0, failed: 0 });
  });

  it('hosts deployed before kha-deploy kept a record: the oldest backup when it is not ours, else ours goes with a warning', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
    const m1 = fc.host('master1');
    m1.files.set(`${HAPROXY}.kha-backup-20230101T000000.000000001Z`, PACKAGE_DEFAULT);
    m1.files.set(`${HAPROXY}.kha-backup-20230102T000000.000000001Z`, m1.files.get(HAPROXY)!);
    const m2 = fc.host('master2');
    for (let i = 1; i <= fc.playbook.backups; i++) m2.files.set(`${HAPROXY}.kha-backup-2023010${i}T000000.000000001Z`, m2.files.get(HAPROXY)!);
    const { result, events } = await remove(fc);
    assert.equal(result.error, undefined, String(result.error));
    assert.equal(m1.files.get(HAPROXY), PACKAGE_DEFAULT, 'restored from the oldest backup');
    assert.equal(m2.files.has(HAPROXY), false, 'unknown original: ours removed');
    assert.equal(fc.host('master3').files.has(HAPROXY), false, 'no backup at all: kha-deploy created it');
    for (const h of fc.all()) assertClean(h);
    const warnings = events.flatMap((e) => (e.type === 'warning' ? [`${e.host}: ${e.message}`] : []));
    assert.equal(warnings.length, 1, warnings.join('\n'));
    assert.match(warnings[0]!, /^master2: no copy of \/etc\/haproxy\/haproxy\.cfg from before kha-deploy's first write is left on master2/);
    assert.deepEqual(result.report.hosts.find((h) => h.host === 'master2')!.warnings, [warnings[0]!.replace(/^master2: /, '')]);
  });

  it('stops at the first failure: the holder is not touched and keeps the VIP; exit 1 with host, step and what to do', async () => {
    const fc = await deployed();
    const m1 = fc.host('master1').snapshot();
    fc.host('master2').loseConnectionOn('remove', (c) => c.args[0] === 'configs');
    const { result } = await remove(fc);
    const err = result.error;
    assert.ok(err instanceof HostStepError, String(err));
    assert.equal(err.host, 'master2');
    assert.equal(result.report.exitCode, 1);
    assert.deepEqual(fc.host('master1').snapshot(), m1, 'the holder is untouched');
    assert.deepEqual(kindsAfterDeploy(fc, 'master1'), ['lock']);
    assert.deepEqual(fc.vipHolders(), ['master1']);
    assertClean(fc.host('master3'));
    assert.deepEqual(recapOf(result), {
      master3: { ok: 1, changed: 3, unreachable: 0, failed: 0 },
      master2: { ok: 0, changed: 1, unreachable: 1, failed: 0 },
      master1: { ok: 0, changed: 0, unreachable: 0, failed: 0 },
    });
    assert.deepEqual(result.report.hosts.map((h) => h.result), ['removed', 'unreachable', 'not reached']);
    assert.deepEqual(result.report.vipHolders, ['master1']);
    // Rerun once master2 is back: it finishes master2, then master1.
    const again = await remove(fc);
    assert.equal(again.result.error, undefined, String(again.result.error));
    for (const h of fc.all()) assertClean(h);
  });

  it('another run holds the lock on one master: nothing is changed anywhere', async () => {
    const fc = await deployed();
    const before = fc.all().map((h) => h.snapshot());
    fc.host('master2').lockedBy = 'pid=4242 user=ops owner=kha-deploy pid 4242 by ops@laptop';
    const { result } = await remove(fc);
    assert.ok(result.error instanceof ManyErrors);
    assert.ok(result.error.errors[0] instanceof LockedError);
    assert.match(result.error.message, /no host was changed/);
    assert.deepEqual(fc.all().map((h) => h.snapshot()), before);
    assert.equal(fc.logOf('remove').length, 0);
  });

  it('an unreachable master at the start: nothing is changed (exit 1; --limit leaves it out)', async () => {
    const fc = await deployed();
    fc.host('master3').failConnect();
    const { result } = await remove(fc);
    assert.ok(result.error instanceof ManyErrors);
    assert.match(result.error.message, /cannot reach every master: no host was changed \(leave a dead master out with --limit\)/);
    assert.equal(fc.logOf('remove').length, 0);
    assert.equal(recapOf(result).master3!.unreachable, 1);
  });

  it('--limit without the holder: only those masters, the VIP stays', async () => {
    const fc = await deployed();
    const { result } = await remove(fc, { hosts: ['master2', 'master3'] });
    assert.equal(result.error, undefined);
    assert.deepEqual(result.report.order, ['master3', 'master2']);
    assert.deepEqual(fc.vipHolders(), ['master1']);
    assert.deepEqual(kindsAfterDeploy(fc, 'master1'), []);
    assert.equal(result.report.vipReleasedBy, null);
  });

  it('Ctrl-C after the first master: stops before the next step, exit 130, the holder untouched', async () => {
    const fc = await deployed();
    const ctrl = new AbortController();
    const { result } = await remove(fc, {
      signal: ctrl.signal,
      onEvent: (e) => {
        if (e.type === 'remove-host-done' && e.host === 'master3') ctrl.abort();
      },
    });
    assert.ok(result.error instanceof InterruptedError, String(result.error));
    assert.equal(result.report.exitCode, 130);
    assert.deepEqual(kindsAfterDeploy(fc, 'master2'), ['lock']);
    assert.deepEqual(kindsAfterDeploy(fc, 'master1'), ['lock']);
    assert.deepEqual(fc.vipHolders(), ['master1']);
  });

  it('--purge on a host without a package manager: refused before any host changes', async () => {
    const fc = await deployed();
    // A master whose facts show no apt-get/dnf/yum.
    const h = fc.host('master2');
    const orig = h.factsText.bind(h);
    h.factsText = () => orig().replace('cmd.apt-get=/usr/bin/apt-get', 'cmd.apt-get=');
    const { result } = await remove(fc, { purge: true });
    assert.ok(result.error instanceof ManyErrors);
    assert.match(String(result.error.errors[0]?.message), /--purge: no supported package manager .* on master2/);
    assert.equal(fc.logOf('remove').length, 0);
  });
});

describe('remove: the command line frame', () => {
  it('an inventory that cannot be read: exit 2 before any host, one JSON document on stdout with --output json', () => {
    const program = `import('./src/commands/remove-cli.ts').then((m) => m.runRemoveCommand({ inventory: '/nonexistent/inv.ini', knownHosts: '/dev/null', acceptNewHostKeys: false, output: 'json', verbose: false, askBecomePass: false, purge: false })).then((c) => { process.exitCode = c; })`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', program], { encoding: 'utf8', cwd: join(import.meta.dirname, '..', '..') });
    assert.equal(r.status, 2, r.stderr);
    const doc = JSON.parse(r.stdout);
    assert.deepEqual([doc.ok, doc.exitCode], [false, 2]);
    assert.match(doc.error, /nonexistent/);
  });
});
