// Facts: the parser on realistic outputs (test/fixtures/facts/*.txt), its refusals, and the script
// itself run by this machine's sh (Debian 12 without systemd).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FactsParseError, factsScript, parseFacts } from '../src/facts.js';
import { loadPlaybook } from '../src/playbook.js';
import type { HostFacts } from '../src/types.js';
import { cluster } from './fixtures/facts/cluster.js';

const playbook = loadPlaybook();
const fixture = (name: string) => readFileSync(new URL(`./fixtures/facts/${name}`, import.meta.url), 'utf8');
const VIP = '10.0.0.100';
const HAPROXY_SHA = '3f1c9f5a2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f';
const KEEPALIVED_SHA = '0d2a4c6e8f1b3d5a7c9e2f4b6d8a1c3e5f7b9d2a4c6e8f1b3d5a7c9e2f4b6d8a';
const NO_UNIT = { active: '', enabled: '', mainPid: 0 };
const NO_FILES = { '/etc/haproxy/haproxy.cfg': null, '/etc/keepalived/keepalived.conf': null, '/etc/tmpfiles.d/kha-deploy-haproxy.conf': null };

describe('parseFacts on fixtures', () => {
  it('fresh Debian 12 without packages', () => {
    const expected: HostFacts = {
      host: 'master1',
      osId: 'debian',
      osFamily: 'debian',
      pkgManager: 'apt',
      installed: { keepalived: false, haproxy: false, curl: true },
      keepalivedVersion: null,
      keepalivedServingCheck: null,
      haproxyVersion: null,
      haproxyPromex: null,
      procEvents: true,
      pkgInterrupted: false,
      files: NO_FILES,
      applied: { keepalived: null, haproxy: null },
      units: { keepalived: NO_UNIT, haproxy: NO_UNIT },
      runDirExists: false,
      runDirPersistent: false,
      routeInterface: 'ens192',
      interfaces: [
        { name: 'lo', addrs: ['127.0.0.1/8', '::1/128'] },
        { name: 'ens192', addrs: ['10.0.0.11/24', 'fe80::250:56ff:fe9a:1b2c/64'] },
      ],
      vipOn: [],
    };
    assert.deepEqual(parseFacts('master1', fixture('debian12-fresh.txt'), VIP), expected);
  });

  it('Debian 12 converged (backup: VIP elsewhere)', () => {
    const f = parseFacts('master2', fixture('debian12-converged.txt'), VIP);
    assert.deepEqual(f.installed, { keepalived: true, haproxy: true, curl: true });
    assert.deepEqual([f.keepalivedVersion, f.haproxyVersion, f.haproxyPromex, f.procEvents], ['2.2.7', '2.6.12', true, true]);
    assert.deepEqual(f.files, {
      '/etc/haproxy/haproxy.cfg': HAPROXY_SHA,
      '/etc/keepalived/keepalived.conf': KEEPALIVED_SHA,
      '/etc/tmpfiles.d/kha-deploy-haproxy.conf': null,
    });
    assert.deepEqual(f.applied, { keepalived: KEEPALIVED_SHA, haproxy: HAPROXY_SHA });
    assert.deepEqual(f.units, {
      keepalived: { active: 'active', enabled: 'enabled', mainPid: 812 },
      haproxy: { active: 'active', enabled: 'enabled', mainPid: 790 },
    });
    assert.equal(f.runDirExists, true);
    assert.equal(f.runDirPersistent, true);
    assert.equal(f.routeInterface, 'ens192');
    assert.deepEqual(f.vipOn, []);
  });

  it('Rocky 9: quoted os-release values, dnf preferred over its yum alias', () => {
    const f = parseFacts('master3', fixture('rocky9-dnf.txt'), VIP);
    assert.equal(f.osId, 'rocky');
    assert.equal(f.osFamily, 'rhel');
    assert.equal(f.pkgManager, 'dnf');
    assert.equal(f.routeInterface, 'enp1s0');
    assert.equal(f.runDirPersistent, false);
  });

  it('Rocky 9 with SELinux enforcing and firewalld running; facts from an older script say nothing of either', () => {
    const f = parseFacts('master3', fixture('rocky9-selinux-firewalld.txt'), VIP);
    assert.equal(f.selinux, 'enforcing');
    assert.equal(f.firewalldRunning, true);
    const old = parseFacts('master3', fixture('rocky9-dnf.txt'), VIP);
    assert.equal('selinux' in old, false);
    assert.equal('firewalldRunning' in old, false);
    // Everything else reads the same.
    const { selinux: _s, firewalldRunning: _f, ...rest } = f;
    assert.deepEqual(rest, old);
  });

  it('CentOS 7: yum, installed but disabled/failed units, a two-line route output', () => {
    const f = parseFacts('master1', fixture('centos7-yum.txt'), VIP);
    assert.equal(f.osId, 'centos');
    assert.equal(f.osFamily, 'rhel');
    assert.equal(f.pkgManager, 'yum');
    assert.deepEqual(f.installed, { keepalived: true, haproxy: true, curl: true });
    assert.deepEqual([f.keepalivedVersion, f.haproxyVersion, f.haproxyPromex], ['1.3.5', '1.5.18', false]);
    assert.deepEqual(f.units, {
      keepalived: { active: 'inactive', enabled: 'disabled', mainPid: 0 },
      haproxy: { active: 'failed', enabled: 'disabled', mainPid: 0 },
    });
    assert.equal(f.routeInterface, 'eth0');
    assert.deepEqual(
      f.interfaces.map((i) => i.name),
      ['lo', 'eth0', 'docker0', 'tunl0'],
    );
  });

  it('VIP held: the route says `local … dev lo`, the interface holding the VIP wins', () => {
    const f = parseFacts('master1', fixture('vip-held.txt'), VIP);
    assert.equal(f.osFamily, 'debian');
    assert.deepEqual(f.vipOn, ['ens192']);
    assert.equal(f.routeInterface, 'ens192');
    assert.deepEqual(f.interfaces[1], { name: 'ens192', addrs: ['10.0.0.11/24', '10.0.0.100/32', 'fe80::250:56ff:fe9a:1b2c/64'] });
  });

  it('IPv6 VIP held, matched whatever way the VIP is spelled', () => {
    for (const vip of ['2001:db8::100', '2001:DB8:0:0::100', '2001:0db8::0100']) {
      const f = parseFacts('master1', fixture('ipv6-vip-held.txt'), vip);
      assert.deepEqual(f.vipOn, ['eth0'], vip);
      assert.equal(f.routeInterface, 'eth0', vip);
    }
  });

  it('container without systemd: empty unit sections mean nothing is known; several interfaces', () => {
    const f = parseFacts('master1', fixture('container-no-systemd.txt'), VIP);
    assert.deepEqual(f.units, { keepalived: NO_UNIT, haproxy: NO_UNIT });
    assert.equal(f.procEvents, false, 'its own PID namespace: the kernel sends keepalived no process events');
    assert.deepEqual(
      f.interfaces.map((i) => i.name),
      ['lo', 'eth0', 'eth1'],
    );
    assert.equal(f.routeInterface, 'eth1');
  });
});

describe('parseFacts details', () => {
  const base = fixture('debian12-fresh.txt');
  const edit = (from: string | RegExp, to: string) => {
    const out = base.replace(from, to);
    assert.notEqual(out, base, `fixture edit ${String(from)} did not apply`);
    return out;
  };

  it('strips @ifN from interface names', () => {
    const f = parseFacts('m', edit(/^2: ens192 /gm, '2: ens192@if106 '), VIP);
    assert.deepEqual(f.interfaces.map((i) => i.name), ['lo', 'ens192']);
  });

  it('route to a VIP on lo only, or no route at all: no interface', () => {
    assert.equal(parseFacts('m', edit('10.0.0.100 dev ens192 src 10.0.0.11 uid 0 \\    cache ', 'local 10.0.0.100 dev lo table local'), VIP).routeInterface, null);
    assert.equal(parseFacts('m', edit(/@begin ip-route\n.*\n@end ip-route/, '@begin ip-route\n@end ip-route'), VIP).routeInterface, null);
  });

  it('route via a gateway still names the device', () => {
    assert.equal(parseFacts('m', edit('10.0.0.100 dev ens192', '10.0.0.100 via 10.0.0.1 dev ens193'), VIP).routeInterface, 'ens193');
  });

  it('a state file holding something else than a sha256 means unknown', () => {
    assert.equal(parseFacts('m', edit('applied.haproxy=', 'applied.haproxy=abc'), VIP).applied.haproxy, null);
  });

  it('masked units and a peer address are read as printed', () => {
    const f = parseFacts(
      'm',
      edit('@begin unit.haproxy\nLoadState=not-found\nActiveState=inactive\nUnitFileState=', '@begin unit.haproxy\nLoadState=masked\nActiveState=inactive\nUnitFileState=masked').replace(
        '@end ip-addr',
        '5: tun0    inet 10.9.0.1 peer 10.9.0.2/32 scope global tun0\\       valid_lft forever preferred_lft forever\n@end ip-addr',
      ),
      VIP,
    );
    assert.deepEqual(f.units.haproxy, { active: 'inactive', enabled: 'masked', mainPid: 0 });
    assert.deepEqual(f.interfaces[2], { name: 'tun0', addrs: ['10.9.0.1'] });
  });

  it('finds the markers when a chatty login shell prints before and after (.bashrc echo, motd)', () => {
    const chatty = `Welcome to master1!\nkha-facts 0 is not our marker\n\u001b[32mconda base activated\u001b[0m\n${base}bye from .bash_logout\n`;
    assert.deepEqual(parseFacts('m', chatty, VIP), parseFacts('m', base, VIP));
  });

  it('reads pkg.interrupted (dpkg --audit found something); hosts without dpkg leave it out', () => {
    assert.equal(parseFacts('m', base.replace('rundir=no', 'rundir=no\npkg.interrupted=yes'), VIP).pkgInterrupted, true);
    assert.equal(parseFacts('m', base.replace('rundir=no', 'rundir=no\npkg.interrupted='), VIP).pkgInterrupted, false);
    assert.equal(parseFacts('m', base, VIP).pkgInterrupted, false);
  });

  it('reads curl, the versions, PROMEX and process events; empty means unknown', () => {
    const f = parseFacts('m', edit('haproxy.version=\n', 'haproxy.version=2.9\n').replace('bin.curl=/usr/bin/curl', 'bin.curl=').replace('proc.events=yes', 'proc.events=no'), VIP);
    assert.deepEqual([f.installed.curl, f.haproxyVersion, f.procEvents], [false, '2.9', false]);
    const none = parseFacts('m', base.replace('proc.events=yes', 'proc.events='), VIP);
    assert.deepEqual([none.keepalivedVersion, none.haproxyVersion, none.haproxyPromex, none.procEvents], [null, null, null, null]);
    assert.equal(parseFacts('m', edit('keepalived.version=\n', 'keepalived.version=v2\n'), VIP).keepalivedVersion, null, 'not a version: unknown');
  });

  it('reads keepalived.serving_check (absent: no keepalived.conf)', () => {
    assert.equal(parseFacts('m', base.replace('rundir=no', 'rundir=no\nkeepalived.serving_check=no'), VIP).keepalivedServingCheck, false);
    assert.equal(parseFacts('m', base.replace('rundir=no', 'rundir=no\nkeepalived.serving_check=yes'), VIP).keepalivedServingCheck, true);
    assert.equal(parseFacts('m', base, VIP).keepalivedServingCheck, null);
  });

  it('reads selinux (empty: no SELinux) and firewalld (empty: unknown); refuses another SELinux mode', () => {
    const read = (sel: string, fw: string) => {
      const f = parseFacts('m', base.replace('rundir=no', `rundir=no\nselinux=${sel}\nfirewalld=${fw}`), VIP);
      return [f.selinux, f.firewalldRunning];
    };
    assert.deepEqual(read('enforcing', 'yes'), ['enforcing', true]);
    assert.deepEqual(read('permissive', 'no'), ['permissive', false]);
    assert.deepEqual(read('disabled', ''), ['disabled', null]);
    assert.deepEqual(read('', 'no'), [null, false]);
    assert.throws(() => read('Enforcing', 'no'), /unexpected line: "selinux=Enforcing"/);
    assert.throws(() => read('enforcing', 'maybe'), /unexpected line: "firewalld=maybe"/);
  });

  it('tolerates CRLF line ends and leading blank lines', () => {
    assert.deepEqual(parseFacts('m', `\n${base.replace(/\n/g, '\r\n')}`, VIP), parseFacts('m', base, VIP));
  });

  const garbage: [string, string, RegExp][] = [
    ['empty output', '', /printed nothing/],
    ['output without the marker', `Welcome!\nconda activated\n`, /no 'kha-facts 1' line in the facts output: "Welcome!", "conda activated"/],
    ['truncated output', base.slice(0, base.indexOf('@begin ip-addr')), /truncated/],
    ['an unknown key', base.replace('rundir=no', 'rundir=no\nfoo=bar'), /unexpected line: "foo=bar"/],
    ['a non-boolean rundir', base.replace('rundir=no', 'rundir=maybe'), /unexpected line: "rundir=maybe"/],
    ['a bad hash', base.replace('file - /etc/haproxy/haproxy.cfg', 'file xyz /etc/haproxy/haproxy.cfg'), /unexpected line: "file xyz/],
    ['an unhashable file', base.replace('file - /etc/haproxy/haproxy.cfg', 'file ? /etc/haproxy/haproxy.cfg'), /\/etc\/haproxy\/haproxy\.cfg exists but could not be hashed/],
    ['a missing key', base.replace('cmd.yum=\n', ''), /'cmd\.yum=' is missing/],
    ['a missing section', base.replace(/@begin ip-route\n.*\n@end ip-route\n/, ''), /section ip-route is missing/],
    ['an unknown section', base.replace('@begin ip-route', '@begin ip-routes'), /unknown section: "@begin ip-routes"/],
    ['an unclosed section', base.replace('@end ip-route\n', ''), /section ip-route is not closed/],
    ['garbage in ip -o addr', base.replace('@end ip-addr', 'Device "x" does not exist.\n@end ip-addr'), /unexpected line in ip -o addr output: "Device/],
    ['garbage in systemctl show', base.replace('MainPID=0\n@end unit.haproxy', 'MainPID=0\nFailed to connect to bus\n@end unit.haproxy'), /systemctl show haproxy\.service output: "Failed to connect to bus"/],
    ['an unknown PROMEX answer', base.replace('haproxy.promex=', 'haproxy.promex=maybe'), /unexpected line: "haproxy\.promex=maybe"/],
    ['an unknown proc.events answer', base.replace('proc.events=yes', 'proc.events=1'), /unexpected line: "proc\.events=1"/],
    ['a missing keepalived version key', base.replace('keepalived.version=\n', ''), /'keepalived\.version=' is missing/],
    ['a non-numeric MainPID', base.replace('MainPID=0\n@end unit.haproxy', 'MainPID=x\n@end unit.haproxy'), /MainPID is not a number/],
  ];
  for (const [what, text, re] of garbage) {
    it(`refuses ${what} with a clear message`, () => {
      assert.throws(() => parseFacts('master1', text, VIP), (err: Error) => err instanceof FactsParseError && err.host === 'master1' && /^facts from master1: /.test(err.message) && re.test(err.message));
    });
  }
});

describe('factsScript', () => {
  const spec = cluster();
  const script = factsScript(spec, playbook);

  it('quotes the VIP and names every managed file and state file', () => {
    assert.match(script, /ip -o route get 10\.0\.0\.100 /);
    for (const p of ['/etc/haproxy/haproxy.cfg', '/etc/keepalived/keepalived.conf', '/etc/tmpfiles.d/kha-deploy-haproxy.conf', '/var/lib/kha-deploy/keepalived.applied', '/var/lib/kha-deploy/haproxy.applied']) {
      assert.ok(script.includes(p), p);
    }
    assert.doesNotMatch(script, /\bexit\b/);
    assert.ok(script.endsWith('} </dev/null'), 'stdin closed for every command (the run lock keeps stdin open)');
  });

  it('runs with this machine\'s sh under set -eu, does not end the caller, and parses', () => {
    const out = execFileSync('sh', ['-eu', '-c', `${script}\necho caller-continues`], { encoding: 'utf8' });
    assert.ok(out.endsWith('kha-facts end\ncaller-continues\n'), out.slice(-200));
    const f = parseFacts('local', out.replace('caller-continues\n', ''), spec.vip);
    assert.equal(f.host, 'local');
    assert.ok(f.interfaces.some((i) => i.name === 'lo' && i.addrs.includes('127.0.0.1/8')), JSON.stringify(f.interfaces));
    for (const p of Object.keys(NO_FILES)) assert.ok(p in f.files, p);
  });

  it('reads keepalived\'s and haproxy\'s versions and PROMEX from the binaries (stubs printing what the real ones print)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-facts-bin-'));
    try {
      const run = (keepalived: string, haproxy: string) => {
        writeFileSync(join(dir, 'keepalived'), `#!/bin/sh\n[ "$1" = --version ] || exit 9\nprintf '%s\\n' ${JSON.stringify(keepalived)} >&2\n`, { mode: 0o755 });
        writeFileSync(join(dir, 'haproxy'), `#!/bin/sh\n[ "$1" = -vv ] || exit 9\ncat <<'EOF'\n${haproxy}\nEOF\n`, { mode: 0o755 });
        const out = execFileSync('sh', ['-eu', '-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
        const f = parseFacts('local', out, spec.vip);
        return [f.keepalivedVersion, f.haproxyVersion, f.haproxyPromex];
      };
      const hv26 = 'HAProxy version 2.6.12-1+deb12u1 2023/12/16 - https://haproxy.org/\nFeature list : +EPOLL -KQUEUE +NETFILTER +PCRE2 +PROMEX -MEMORY_PROFILING\nAvailable services : prometheus-exporter';
      assert.deepEqual(run('Keepalived v2.2.7 (01/16,2022)\n\nCopyright(C) 2001-2022 Alexandre Cassen', hv26), ['2.2.7', '2.6.12', true]);
      assert.deepEqual(run('Keepalived v2.2.4 (08/21,2021)', hv26.replace('+PROMEX', '-PROMEX').replace('prometheus-exporter', 'none')), ['2.2.4', '2.6.12', false]);
      // CentOS 7; an epoch before the version (seen in some builds).
      assert.deepEqual(run('Keepalived v1.3.5 (03/19,2017), git commit v1.3.5-6-g6fa32f2', 'HA-Proxy version 1.5.18 2016/05/10\nCopyright 2000-2016 Willy Tarreau'), ['1.3.5', '1.5.18', false]);
      assert.deepEqual(run('Keepalived v1:1.3.9 (10/21,2017)', 'HAProxy version 2.0.33 2023/07/25\nAvailable services :\n\tprometheus-exporter'), ['1.3.9', '2.0.33', true]);
      assert.deepEqual(run('something else', 'nothing useful'), [null, null, false]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads SELinux from getenforce, else from /sys/fs/selinux/enforce, and firewalld from systemctl is-active (stubs)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-facts-sec-'));
    try {
      const enforce = join(dir, 'enforce');
      const run = (opts: { getenforce?: string; enforce?: string; firewalld?: string }) => {
        rmSync(join(dir, 'getenforce'), { force: true });
        rmSync(join(dir, 'systemctl'), { force: true });
        rmSync(enforce, { force: true });
        if (opts.getenforce !== undefined) writeFileSync(join(dir, 'getenforce'), `#!/bin/sh\necho ${opts.getenforce}\n`, { mode: 0o755 });
        if (opts.enforce !== undefined) writeFileSync(enforce, `${opts.enforce}\n`);
        // systemctl answers is-active for firewalld only (no firewalld: as without systemd, nothing);
        // the unit sections stay empty (unknown).
        const answer = opts.firewalld === undefined ? '' : `if [ "$1" = is-active ] && [ "$2" = firewalld.service ]; then echo ${opts.firewalld}; [ ${opts.firewalld} = active ]; exit; fi\n`;
        writeFileSync(join(dir, 'systemctl'), `#!/bin/sh\n${answer}exit 1\n`, { mode: 0o755 });
        // This machine's own getenforce and SELinux switch, if any, are out of the way: only the stubs count.
        const s = script.replace('command -v getenforce', `command -v ${dir}/getenforce`).replaceAll('/sys/fs/selinux/enforce', enforce);
        assert.notEqual(s, script);
        const out = execFileSync('sh', ['-eu', '-c', s], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:/usr/bin:/bin` } });
        const f = parseFacts('local', out, spec.vip);
        return [f.selinux, f.firewalldRunning];
      };
      assert.deepEqual(run({ getenforce: 'Enforcing', firewalld: 'active' }), ['enforcing', true]);
      assert.deepEqual(run({ getenforce: 'Permissive', enforce: '1', firewalld: 'inactive' }), ['permissive', false], 'getenforce wins');
      assert.deepEqual(run({ getenforce: 'Disabled', firewalld: 'unknown' }), ['disabled', false]);
      assert.deepEqual(run({ enforce: '1', firewalld: 'failed' }), ['enforcing', false]);
      assert.deepEqual(run({ enforce: '0' }), ['permissive', null], 'no systemd: firewalld unknown');
      assert.deepEqual(run({}), [null, null]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports process events from the namespaces: the initial ones (fixed inode numbers) or not', () => {
    const events = (pidNs: string, userNs: string) => {
      const s = script.replace('kha_np=$(readlink /proc/self/ns/pid 2>/dev/null) || kha_np=', `kha_np=${pidNs}`).replace('kha_nu=$(readlink /proc/self/ns/user 2>/dev/null) || kha_nu=', `kha_nu=${userNs}`).replace('/boot/config-', '/nonexistent/config-');
      assert.notEqual(s, script);
      return /^proc\.events=(.*)$/m.exec(execFileSync('sh', ['-eu', '-c', s], { encoding: 'utf8' }))![1];
    };
    assert.equal(events("'pid:[4026531836]'", "'user:[4026531837]'"), 'yes');
    assert.equal(events("'pid:[4026532570]'", "'user:[4026531837]'"), 'no', 'a container: its own PID namespace');
    assert.equal(events("'pid:[4026531836]'", "'user:[4026532001]'"), 'no', 'its own user namespace');
    assert.equal(events("'pid:[4026531836]'", "''"), 'yes', 'a kernel without user namespaces');
    assert.equal(events("''", "''"), '', 'unknown');
  });

  it('says no process events when the kernel config lacks CONFIG_PROC_EVENTS', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-facts-boot-'));
    try {
      const cfg = join(dir, 'config');
      const s = script
        .replace('kha_np=$(readlink /proc/self/ns/pid 2>/dev/null) || kha_np=', "kha_np='pid:[4026531836]'")
        .replace('kha_nu=$(readlink /proc/self/ns/user 2>/dev/null) || kha_nu=', "kha_nu='user:[4026531837]'")
        .replace('kha_f=/boot/config-$kha_f;', `kha_f=${cfg};`);
      assert.notEqual(s, script);
      const events = () => /^proc\.events=(.*)$/m.exec(execFileSync('sh', ['-eu', '-c', s], { encoding: 'utf8' }))![1];
      writeFileSync(cfg, 'CONFIG_CONNECTOR=y\nCONFIG_PROC_EVENTS=y\n');
      assert.equal(events(), 'yes');
      writeFileSync(cfg, 'CONFIG_CONNECTOR=y\n# CONFIG_PROC_EVENTS is not set\n');
      assert.equal(events(), 'no');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finds a tmpfiles.d entry for the run dir, honouring masking by an earlier directory', () => {
    // The same scan, pointed at scratch directories, through the script's own text.
    const dir = execFileSync('mktemp', ['-d'], { encoding: 'utf8' }).trim();
    try {
      const scan = (setup: string) => {
        const s = script
          .replaceAll('/etc/tmpfiles.d', `${dir}/etc`)
          .replaceAll('/run/tmpfiles.d', `${dir}/run`)
          .replaceAll('/usr/lib/tmpfiles.d', `${dir}/lib`);
        const out = execFileSync('sh', ['-c', `rm -rf ${dir}/*; mkdir -p ${dir}/etc ${dir}/run ${dir}/lib; ${setup}\n${s}`], { encoding: 'utf8' });
        return /^rundir\.tmpfiles=(.*)$/m.exec(out)![1];
      };
      assert.equal(scan(''), '');
      assert.equal(scan(`echo 'd /run/haproxy 2775 haproxy haproxy -' > ${dir}/lib/haproxy.conf`), `${dir}/lib/haproxy.conf`);
      assert.equal(scan(`echo 'd /var/run/haproxy 0755 root root -' > ${dir}/lib/haproxy.conf`), `${dir}/lib/haproxy.conf`);
      assert.equal(scan(`echo 'd /run/haproxy-other 0755 root root -' > ${dir}/lib/x.conf`), '');
      assert.equal(scan(`echo '# d /run/haproxy 0755 root root -' > ${dir}/lib/x.conf`), '');
      assert.equal(scan(`echo 'd /run/haproxy 0755 root root -' > ${dir}/lib/haproxy.conf; ln -s /dev/null ${dir}/etc/haproxy.conf`), '');
      assert.equal(scan(`echo 'd /run/haproxy 0755 root root -' > ${dir}/etc/kha-deploy-haproxy.conf`), `${dir}/etc/kha-deploy-haproxy.conf`);
    } finally {
      execFileSync('rm', ['-rf', dir]);
    }
  });
});
