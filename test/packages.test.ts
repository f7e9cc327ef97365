// Package command plans: exact scripts per package manager, and the policy-rc.d guard run for real.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { aptInstallScript, packagesStep } from '../src/packages.js';
import { loadPlaybook } from '../src/playbook.js';
import type { HostFacts } from '../src/types.js';
import { freshFacts } from './fixtures/facts/cluster.js';

const playbook = loadPlaybook();
const facts = (over: Partial<HostFacts>): HostFacts => ({ ...freshFacts(), ...over });

const APT_BOTH = [
  '# kha-deploy packages apt keepalived haproxy',
  'export DEBIAN_FRONTEND=noninteractive',
  'export NEEDRESTART_MODE=l',
  'kha_prc=',
  `trap 'if [ -n "$kha_prc" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT`,
  "trap 'exit 129' HUP",
  "trap 'exit 130' INT",
  "trap 'exit 143' TERM",
  "if (set -C; printf '#!/bin/sh\\n# kha-deploy: no service starts while packages install\\nexit 101\\n' > /usr/sbin/policy-rc.d) 2>/dev/null; then kha_prc=1; chmod 0755 /usr/sbin/policy-rc.d; fi",
  'apt-get update -q -o DPkg::Lock::Timeout=300 && apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold keepalived haproxy',
].join('\n');

describe('packagesStep', () => {
  it('apt: both missing → one run op with the guarded install', () => {
    assert.deepEqual(packagesStep(facts({}), playbook), {
      id: 'packages',
      title: 'install keepalived and haproxy',
      ops: [{ op: 'run', script: APT_BOTH, description: 'install keepalived and haproxy with apt-get' }],
      reason: 'keepalived and haproxy are not installed',
    });
  });

  it('dnf: only the missing package', () => {
    assert.deepEqual(packagesStep(facts({ osId: 'rocky', osFamily: 'rhel', pkgManager: 'dnf', installed: { keepalived: true, haproxy: false } }), playbook), {
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

  it('nothing to do when both are installed, even without a package manager', () => {
    assert.deepEqual(packagesStep(facts({ pkgManager: null, installed: { keepalived: true, haproxy: true } }), playbook), {
      id: 'packages',
      title: 'install keepalived and haproxy',
      ops: [],
      reason: '',
    });
  });

  it('no supported package manager → a clear error naming the host', () => {
    assert.throws(
      () => packagesStep(facts({ osId: 'alpine', osFamily: 'unknown', pkgManager: null }), playbook),
      new Error('no supported package manager (apt-get, dnf, yum) found on master1 (os: alpine); install keepalived and haproxy by hand, then rerun'),
    );
  });

  it('package names come from the playbook and are quoted', () => {
    const pb = { ...playbook, packages: { keepalived: 'keepalived', haproxy: 'haproxy=2.6.*' } };
    const step = packagesStep(facts({ pkgManager: 'dnf' }), pb);
    assert.deepEqual(step.ops, [{ op: 'run', script: "# kha-deploy packages dnf keepalived haproxy=2.6.*\ndnf install -y keepalived 'haproxy=2.6.*'", description: 'install keepalived and haproxy=2.6.* with dnf' }]);
  });
});

describe('the apt script, run with a stub apt-get', () => {
  // Runs the real script text with the policy-rc.d path and apt-get redirected into a scratch dir.
  function run(opts: { existing?: string; aptExit: number; killParent?: boolean }) {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apt-'));
    try {
      const prc = join(dir, 'policy-rc.d');
      if (opts.existing !== undefined) writeFileSync(prc, opts.existing);
      // The stub records whether policy-rc.d forbade starts while "installing".
      mkdirSync(join(dir, 'bin'));
      const stub = `#!/bin/sh\nif [ "$1" = install ] && [ -x ${prc} ]; then ${prc}; echo "policy=$?" >> ${dir}/log; fi\necho "apt-get $*" >> ${dir}/log\n${opts.killParent ? 'kill -TERM $PPID\n' : ''}exit ${opts.aptExit}\n`;
      writeFileSync(join(dir, 'bin', 'apt-get'), stub, { mode: 0o755 });
      const script = aptInstallScript(['keepalived', 'haproxy']).replaceAll('/usr/sbin/policy-rc.d', prc);
      const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${join(dir, 'bin')}:${process.env.PATH}` } });
      return { code: r.status, log: readFileSync(join(dir, 'log'), 'utf8'), left: existsSync(prc) ? readFileSync(prc, 'utf8') : null };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('forbids service starts during the install and removes its policy-rc.d afterwards', () => {
    const r = run({ aptExit: 0 });
    assert.equal(r.code, 0);
    assert.match(r.log, /^apt-get update -q /m);
    assert.match(r.log, /^policy=101$/m);
    assert.equal(r.left, null);
  });

  it('removes it on failure too and keeps the exit code', () => {
    const r = run({ aptExit: 100 });
    assert.equal(r.code, 100);
    assert.equal(r.left, null);
  });

  it('removes it when the script is killed with SIGTERM (exit 143)', () => {
    const r = run({ aptExit: 0, killParent: true });
    assert.equal(r.code, 143);
    assert.equal(r.left, null);
  });

  it('leaves an existing policy-rc.d alone', () => {
    const mine = '#!/bin/sh\nexit 0\n';
    const r = run({ existing: mine, aptExit: 0 });
    assert.equal(r.code, 0);
    assert.equal(r.left, mine);
  });

  it('is valid POSIX sh (dash -n)', () => {
    execFileSync('dash', ['-n', '-c', aptInstallScript(['keepalived', 'haproxy'])]);
  });
});
