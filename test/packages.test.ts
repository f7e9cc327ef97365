// Package command plans: exact scripts per package manager, and the policy-rc.d guard run for real.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { aptInstallScript, packagesStep } from '../src/packages.js';
import { loadPlaybook } from '../src/playbook.js';
import type { HostFacts } from '../src/types.js';
import { parseFacts } from '../src/facts.js';
import { cluster, freshFacts } from './fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook } from './helpers/fake-host.js';

const playbook = loadPlaybook();
const facts = (over: Partial<HostFacts>): HostFacts => ({ ...freshFacts(), ...over });

describe('packagesStep', () => {
  it('apt: both missing → one run op with the guarded install', () => {
    assert.deepEqual(packagesStep(facts({}), playbook), {
      id: 'packages',
      title: 'install keepalived and haproxy',
      ops: [{ op: 'run', script: aptInstallScript(['keepalived', 'haproxy']), description: 'install keepalived and haproxy with apt-get' }],
      reason: 'keepalived and haproxy are not installed',
    });
  });

  it('dnf: only the missing package', () => {
    assert.deepEqual(packagesStep(facts({ osId: 'rocky', osFamily: 'rhel', pkgManager: 'dnf', installed: { keepalived: true, haproxy: false, curl: true } }), playbook), {
      id: 'packages',
      title: 'install keepalived and haproxy',
      ops: [{ op: 'run', script: '# kha-deploy packages dnf haproxy\ndnf install -y haproxy', description: 'install haproxy with dnf' }],
      reason: 'haproxy is not installed',
    });
  });

  it('yum: both', () => {
    const step = packagesStep(facts({ osId: 'centos', osFamily: 'rhel', pkgManager: 'yum' }), playbook);
    assert.deepEqual(step.ops, [{ op: 'run', script: '# kha-deploy packages yum keepalived haproxy\nyum install -y keepalived haproxy', description: 'install keepalived and haproxy with yum' }]);
  });

  it('an interrupted install on an apt host is finished even when both binaries are there', () => {
    const step = packagesStep(facts({ installed: { keepalived: true, haproxy: true, curl: true }, pkgInterrupted: true }), playbook);
    assert.equal(step.ops.length, 1);
    assert.match(step.reason, /dpkg reports an interrupted installation/);
    assert.match((step.ops[0] as { script: string }).script, /^# kha-deploy packages apt keepalived haproxy\n/);
  });

  it('nothing to do when both are installed, even without a package manager', () => {
    assert.deepEqual(packagesStep(facts({ pkgManager: null, installed: { keepalived: true, haproxy: true, curl: true } }), playbook), {
      id: 'packages',
      title: 'install keepalived and haproxy',
      ops: [],
      reason: '',
    });
  });

  it('curl (keepalived\'s check of the local haproxy) is installed when missing, alone or with the others', () => {
    assert.deepEqual(packagesStep(facts({ installed: { keepalived: false, haproxy: false, curl: false } }), playbook).ops, [
      { op: 'run', script: aptInstallScript(['keepalived', 'haproxy', 'curl']), description: 'install keepalived, haproxy and curl with apt-get' },
    ]);
    const only = packagesStep(facts({ pkgManager: 'dnf', installed: { keepalived: true, haproxy: true, curl: false } }), playbook);
    assert.deepEqual(only.ops, [{ op: 'run', script: '# kha-deploy packages dnf curl\ndnf install -y curl', description: 'install curl with dnf' }]);
    assert.equal(only.reason, 'curl is not installed');
    assert.equal(packagesStep(facts({ installed: { keepalived: false, haproxy: false, curl: false } }), playbook).reason, 'keepalived, haproxy and curl are not installed');
    assert.throws(() => packagesStep(facts({ pkgManager: null, installed: { keepalived: true, haproxy: false, curl: false } }), playbook), /install haproxy and curl by hand, then rerun$/);
  });

  it('no supported package manager → a clear error naming the host', () => {
    assert.throws(
      () => packagesStep(facts({ osId: 'alpine', osFamily: 'unknown', pkgManager: null }), playbook),
      new Error('no supported package manager (apt-get, dnf, yum) found on master1 (os: alpine); install keepalived and haproxy by hand, then rerun'),
    );
  });

  it('package names come from the playbook and are quoted', () => {
    const pb = { ...playbook, packages: { keepalived: 'keepalived', haproxy: 'haproxy=2.6.*', curl: 'curl' } };
    const step = packagesStep(facts({ pkgManager: 'dnf' }), pb);
    assert.deepEqual(step.ops, [{ op: 'run', script: "# kha-deploy packages dnf keepalived haproxy=2.6.*\ndnf install -y keepalived 'haproxy=2.6.*'", description: 'install keepalived and haproxy=2.6.* with dnf' }]);
  });
});

describe('packagesStep on the fake masters (test/helpers/fake-host.ts)', () => {
  it('a master without curl gets it with the others; afterwards the facts report all three and the versions', async () => {
    const fc = new FakeCluster(cluster(), fastPlaybook(), { hosts: { master1: { curl: false, versions: { promex: true } } } });
    const h = fc.host('master1');
    const before = parseFacts('master1', h.factsText(), fc.spec.vip);
    assert.deepEqual(before.installed, { keepalived: false, haproxy: false, curl: false });
    assert.deepEqual([before.keepalivedVersion, before.haproxyVersion, before.haproxyPromex, before.procEvents], [null, null, null, true]);
    const step = packagesStep(before, fc.playbook);
    assert.deepEqual(step.ops.map((o) => (o.op === 'run' ? o.description : o.op)), ['install keepalived, haproxy and curl with apt-get']);
    const op = step.ops[0]!;
    assert.ok(op.op === 'run');
    assert.equal((await fc.session('master1').run(op.script)).code, 0);
    assert.deepEqual(h.tags(), ['packages apt keepalived haproxy curl']);
    const after = parseFacts('master1', h.factsText(), fc.spec.vip);
    assert.deepEqual(after.installed, { keepalived: true, haproxy: true, curl: true });
    assert.deepEqual([after.keepalivedVersion, after.haproxyVersion, after.haproxyPromex], ['2.2.7', '2.6.12', true]);
    assert.deepEqual(packagesStep(after, fc.playbook).ops, []);
    fc.assertNoSurprises();
  });

  it('curl shipped with the OS is not installed again (the tags other tests expect stay the same)', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook());
    const step = packagesStep(parseFacts('master1', fc.host('master1').factsText(), fc.spec.vip), fc.playbook);
    assert.deepEqual(step.ops.map((o) => (o.op === 'run' ? o.script.split('\n')[0] : o.op)), ['# kha-deploy packages apt keepalived haproxy']);
  });
});

describe('the apt script, run with a stub apt-get', () => {
  // Runs the real script text with the policy-rc.d path redirected into a scratch dir and stub
  // apt-get / apt-cache first on PATH.
  function run(opts: {
    existing?: string;
    /** Exit code of `apt-get install` (and of every call when killParent). */
    aptExit: number;
    updateExit?: number;
    /** What `apt-get update` prints (stdout and stderr alike: the script reads both). */
    updateOutput?: string;
    /** Candidate version `apt-cache policy NAME` shows; a name not listed is unknown (apt-cache prints nothing). */
    candidates?: Record<string, string>;
    packages?: string[];
    killParent?: boolean;
    /** What `dpkg --audit` prints (an interrupted install); nothing by default. */
    audit?: string;
  }) {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apt-'));
    try {
      const prc = join(dir, 'policy-rc.d');
      if (opts.existing !== undefined) writeFileSync(prc, opts.existing);
      mkdirSync(join(dir, 'bin'));
      writeFileSync(join(dir, 'update-output'), opts.updateOutput ?? 'Hit:1 http://deb.debian.org/debian bookworm InRelease\nReading package lists...\n');
      // The stub records whether policy-rc.d forbade starts while "installing".
      const aptGet = [
        '#!/bin/sh',
        `if [ "$1" = install ] && [ -x ${prc} ]; then ${prc}; echo "policy=$?" >> ${dir}/log; fi`,
        `echo "apt-get $*" >> ${dir}/log`,
        ...(opts.killParent ? ['kill -TERM $PPID'] : []),
        `if [ "$1" = update ]; then cat ${dir}/update-output; exit ${opts.updateExit ?? 0}; fi`,
        `exit ${opts.aptExit}`,
      ].join('\n');
      writeFileSync(join(dir, 'bin', 'apt-get'), `${aptGet}\n`, { mode: 0o755 });
      // `apt-cache policy -- NAME` in apt's own layout.
      const aptCache = `#!/bin/sh\necho "apt-cache $*" >> ${dir}/log\nf=${dir}/candidate-$3\n[ -f "$f" ] || exit 0\nprintf '%s:\\n  Installed: (none)\\n  Candidate: %s\\n  Version table:\\n' "$3" "$(cat "$f")"\n`;
      writeFileSync(join(dir, 'bin', 'apt-cache'), aptCache, { mode: 0o755 });
      writeFileSync(join(dir, 'audit'), opts.audit ?? '');
      writeFileSync(join(dir, 'bin', 'dpkg'), `#!/bin/sh\necho "dpkg $*" >> ${dir}/log\n[ "$1" = --audit ] && cat ${dir}/audit\nexit 0\n`, { mode: 0o755 });
      for (const [name, version] of Object.entries(opts.candidates ?? {})) writeFileSync(join(dir, `candidate-${name}`), version);
      const script = aptInstallScript(opts.packages ?? ['keepalived', 'haproxy']).replaceAll('/usr/sbin/policy-rc.d', prc);
      const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}`, TMPDIR: dir } });
      const left = readdirSync(dir).filter((f) => f.startsWith('tmp.'));
      return { code: r.status, stdout: r.stdout, stderr: r.stderr, log: readFileSync(join(dir, 'log'), 'utf8'), prc: existsSync(prc) ? readFileSync(prc, 'utf8') : null, left };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  // What apt-get update prints when the retired Kubernetes repository and a dead mirror are configured.
  const DEAD_SOURCES = [
    'Hit:1 http://deb.debian.org/debian bookworm InRelease',
    'Ign:2 https://apt.kubernetes.io kubernetes-xenial InRelease',
    'Err:3 https://apt.kubernetes.io kubernetes-xenial Release',
    '  404  Not Found [IP: 142.250.74.110 443]',
    'Reading package lists...',
    "E: The repository 'https://apt.kubernetes.io kubernetes-xenial Release' does not have a Release file.",
    "W: Failed to fetch http://mirror.example.net/debian/dists/bookworm/InRelease  Could not resolve 'mirror.example.net'",
    'W: Some index files failed to download. They have been ignored, or old ones used instead.',
    '',
  ].join('\n');

  it('forbids service starts during the install and removes its policy-rc.d afterwards', () => {
    const r = run({ aptExit: 0 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.log, /^apt-get update -q /m);
    assert.match(r.log, /^policy=101$/m);
    assert.equal(r.prc, null);
    assert.doesNotMatch(r.stdout, /@@KHA-WARN/);
    assert.deepEqual(r.left, []);
  });

  it('finishes an interrupted install first (dpkg --configure -a, under policy-rc.d), with a warning', () => {
    const r = run({ aptExit: 0, audit: 'The following packages are only half configured:\n haproxy\n' });
    assert.equal(r.code, 0, r.stderr);
    const log = r.log.split('\n');
    assert.ok(log.indexOf('dpkg --configure -a') > 0 && log.indexOf('dpkg --configure -a') < log.findIndex((l) => l.startsWith('apt-get update')), r.log);
    assert.match(r.stdout, /^@@KHA-WARN dpkg was interrupted earlier: ran dpkg --configure -a first$/m);
    const clean = run({ aptExit: 0 });
    assert.doesNotMatch(clean.log, /--configure/);
  });

  it('removes it on failure too and keeps the exit code', () => {
    const r = run({ aptExit: 100 });
    assert.equal(r.code, 100);
    assert.equal(r.prc, null);
  });

  it('removes it when the script is killed with SIGTERM (exit 143)', () => {
    const r = run({ aptExit: 0, killParent: true });
    assert.equal(r.code, 143);
    assert.equal(r.prc, null);
    assert.deepEqual(r.left, []);
  });

  it('leaves an existing policy-rc.d alone', () => {
    const mine = '#!/bin/sh\nexit 0\n';
    const r = run({ existing: mine, aptExit: 0 });
    assert.equal(r.code, 0);
    assert.equal(r.prc, mine);
  });

  it('installs despite a dead source when every package has a candidate, and names each dead source once', () => {
    const r = run({ aptExit: 0, updateExit: 100, updateOutput: DEAD_SOURCES, candidates: { keepalived: '1:2.2.7-1+b2', haproxy: '2.6.12-1+deb12u1' }, packages: ['keepalived', 'haproxy=2.6.*'] });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.log, /^apt-get install .* keepalived haproxy=2\.6\.\*$/m);
    assert.match(r.log, /^policy=101$/m);
    // The pin is not a name apt-cache knows.
    assert.match(r.log, /^apt-cache policy -- haproxy$/m);
    assert.deepEqual(
      r.stdout.split('\n').filter((l) => l.startsWith('@@KHA-WARN')),
      [
        '@@KHA-WARN apt-get update failed for https://apt.kubernetes.io; installed from the other sources',
        '@@KHA-WARN apt-get update failed for http://mirror.example.net/debian; installed from the other sources',
      ],
    );
    assert.equal(r.prc, null);
    assert.deepEqual(r.left, []);
  });

  it('fails with apt\'s lines on stderr when a package has no candidate, and installs nothing', () => {
    const r = run({ aptExit: 0, updateExit: 100, updateOutput: DEAD_SOURCES, candidates: { keepalived: '1:2.2.7-1+b2', haproxy: '(none)' } });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /^Err:3 https:\/\/apt\.kubernetes\.io kubernetes-xenial Release$/m);
    assert.match(r.stderr, /^E: The repository 'https:\/\/apt\.kubernetes\.io kubernetes-xenial Release' does not have a Release file\.$/m);
    assert.match(r.stderr, /no other source offers: haproxy$/m);
    assert.doesNotMatch(r.log, /^apt-get install/m);
    assert.doesNotMatch(r.stdout, /@@KHA-WARN/);
    assert.equal(r.prc, null);
    assert.deepEqual(r.left, []);
  });

  it('treats a package apt-cache does not know as missing', () => {
    const r = run({ aptExit: 0, updateExit: 100, updateOutput: DEAD_SOURCES, candidates: { haproxy: '2.6.12-1+deb12u1' } });
    assert.equal(r.code, 100);
    assert.match(r.stderr, /no other source offers: keepalived$/m);
    assert.doesNotMatch(r.log, /^apt-get install/m);
  });

  it('warns without a source when update failed without naming one (a lock), and still installs', () => {
    const r = run({ aptExit: 0, updateExit: 100, updateOutput: 'E: Could not get lock /var/lib/apt/lists/lock. It is held by process 812 (apt-get)\n', candidates: { keepalived: '1', haproxy: '2' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.log, /^apt-get install/m);
    assert.match(r.stdout, /^@@KHA-WARN apt-get update failed \(exit 100\); installed from the package lists already on the host$/m);
  });

  it('keeps the install\'s exit code after a failed update', () => {
    const r = run({ aptExit: 100, updateExit: 100, updateOutput: DEAD_SOURCES, candidates: { keepalived: '1', haproxy: '2' } });
    assert.equal(r.code, 100);
    assert.match(r.log, /^apt-get install/m);
    assert.doesNotMatch(r.stdout, /@@KHA-WARN/);
  });

  it('is valid POSIX sh (dash -n)', () => {
    execFileSync('dash', ['-n', '-c', aptInstallScript(['keepalived', 'haproxy'])]);
  });
});
