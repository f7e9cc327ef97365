// Plans: facts in → steps out. Converged facts are built from what the plan itself renders, so the
// idempotence test fails whenever rendering and comparison disagree.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadPlaybook } from '../src/playbook.js';
import { planHost, sha256Hex, vipInterface } from '../src/plan.js';
import { renderHaproxy, renderKeepalived, renderTmpfiles } from '../src/render.js';
import type { ClusterSpec, HostFacts, HostPlan, Operation } from '../src/types.js';
import { parseFacts } from '../src/facts.js';
import { DEBIAN12_VERSIONS, cluster, freshFacts, host } from './fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook } from './helpers/fake-host.js';

const playbook = loadPlaybook();
const HA = '/etc/haproxy/haproxy.cfg';
const KA = '/etc/keepalived/keepalived.conf';
const TMPF = '/etc/tmpfiles.d/kha-deploy-haproxy.conf';

/** master1 after a successful run on Debian 12: files as rendered for its versions, units active+enabled and having loaded them. */
function converged(spec: ClusterSpec, name = 'master1', iface = 'ens192'): HostFacts {
  const f = { ...freshFacts(name), ...DEBIAN12_VERSIONS };
  const ha = sha256Hex(renderHaproxy(spec, playbook, f));
  const ka = sha256Hex(renderKeepalived(spec, host(spec, name), iface, playbook, f));
  return {
    ...f,
    installed: { keepalived: true, haproxy: true, curl: true },
    files: { [HA]: ha, [KA]: ka, [TMPF]: null },
    applied: { keepalived: ka, haproxy: ha },
    units: {
      keepalived: { active: 'active', enabled: 'enabled', mainPid: 812 },
      haproxy: { active: 'active', enabled: 'enabled', mainPid: 790 },
    },
    runDirExists: true,
    runDirPersistent: true,
    routeInterface: iface,
    interfaces: [
      { name: 'lo', addrs: ['127.0.0.1/8'] },
      { name: iface, addrs: ['10.0.0.11/24'] },
    ],
  };
}

const ops = (plan: HostPlan, id: string): Operation[] => plan.steps.find((s) => s.id === id)!.ops;
const reason = (plan: HostPlan, id: string): string => plan.steps.find((s) => s.id === id)!.reason;
/** Ops without the (long) file contents, for readable exact comparisons. */
const brief = (list: Operation[]) => list.map((o) => (o.op === 'write-file' ? { ...o, content: sha256Hex(o.content) } : o.op === 'run' ? { op: 'run', description: o.description } : o));

describe('planHost on keepalived < 2.2.5', () => {
  it('a running keepalived 2.2.4 without the serving check: the new config leaves it out, the plan warns how to add it, and a rerun plans nothing', () => {
    const spec = cluster();
    const old = { ...converged(spec), keepalivedVersion: '2.2.4', keepalivedServingCheck: false };
    // The config on disk is an older kha-deploy's: no serving check, a different hash.
    const first = planHost(spec, host(spec, 'master1'), { ...old, files: { ...old.files, [KA]: 'f'.repeat(64) } }, playbook);
    const write = ops(first, 'keepalived-config')[0] as Extract<Operation, { op: 'write-file' }>;
    assert.doesNotMatch(write.content, /chk_haproxy_serving/);
    assert.match(first.warnings.join('\n'), /keepalived 2\.2\.4 on master1 predates 2\.2\.5: .* stop keepalived on master1/);
    const hash = sha256Hex(write.content);
    const again = planHost(spec, host(spec, 'master1'), { ...old, files: { ...old.files, [KA]: hash }, applied: { ...old.applied, keepalived: hash } }, playbook);
    assert.deepEqual(ops(again, 'keepalived-config'), []);
    assert.deepEqual(ops(again, 'units'), []);
  });
  it('stopped (the next start loads the check from the beginning): the check is rendered and nothing is said', () => {
    const spec = cluster();
    const stopped = { ...converged(spec), keepalivedVersion: '2.2.4', keepalivedServingCheck: false };
    stopped.units = { ...stopped.units, keepalived: { active: 'inactive', enabled: 'enabled', mainPid: 0 } };
    const plan = planHost(spec, host(spec, 'master1'), { ...stopped, files: { ...stopped.files, [KA]: 'f'.repeat(64) } }, playbook);
    assert.match((ops(plan, 'keepalived-config')[0] as Extract<Operation, { op: 'write-file' }>).content, /chk_haproxy_serving/);
    assert.deepEqual(plan.warnings, []);
  });
});

describe('planHost: SELinux enforcing, firewalld running', () => {
  it('warns with the exact commands to run on that master, and plans nothing more for it', () => {
    const spec = cluster();
    const facts: HostFacts = { ...converged(spec), selinux: 'enforcing', firewalldRunning: true };
    const plan = planHost(spec, host(spec, 'master1'), facts, playbook);
    assert.equal(plan.warnings.length, 2, plan.warnings.join('\n'));
    assert.match(plan.warnings[0]!, /^SELinux is enforcing on master1: .*:6443 .* run on master1: setsebool -P haproxy_connect_any 1$/);
    assert.ok(
      plan.warnings[1]!.endsWith(
        `run on master1: firewall-cmd --permanent --add-rich-rule='rule protocol value="vrrp" accept' && firewall-cmd --permanent --add-port=8443/tcp && firewall-cmd --reload`,
      ),
      plan.warnings[1],
    );
    assert.match(plan.warnings[1]!, /^firewalld runs on master1: it drops VRRP \(IP protocol 112\)/);
    // Converged otherwise: the warnings change nothing on the host.
    for (const s of plan.steps) assert.deepEqual(s.ops, [], s.id);
  });
  it('says nothing for SELinux permissive or disabled, firewalld stopped, or facts that do not know', () => {
    const spec = cluster();
    for (const extra of [{ selinux: 'permissive', firewalldRunning: false }, { selinux: 'disabled', firewalldRunning: null }, { selinux: null }, {}] as Partial<HostFacts>[]) {
      assert.deepEqual(planHost(spec, host(spec, 'master1'), { ...converged(spec), ...extra }, playbook).warnings, [], JSON.stringify(extra));
    }
  });
  it('names the inventory\'s vip_port in the firewall command', () => {
    const spec = { ...cluster(), vipPort: 9443 };
    const plan = planHost(spec, host(spec, 'master2'), { ...freshFacts('master2'), firewalldRunning: true }, playbook);
    assert.match(plan.warnings.join('\n'), /firewall-cmd --permanent --add-port=9443\/tcp && firewall-cmd --reload$/);
  });
});

describe('planHost', () => {
  it('fresh host: every step has work, in playbook order', () => {
    const spec = cluster();
    const plan = planHost(spec, host(spec, 'master1'), freshFacts(), playbook);
    assert.equal(plan.host, 'master1');
    assert.deepEqual(
      plan.steps.map((s) => [s.id, s.title]),
      [
        ['packages', 'install keepalived and haproxy'],
        ['rundir', 'ensure /run/haproxy exists, now and after reboot'],
        ['haproxy-config', 'write /etc/haproxy/haproxy.cfg'],
        ['keepalived-config', 'write /etc/keepalived/keepalived.conf'],
        ['units', 'enable and start haproxy, then keepalived'],
      ],
    );
    const haHash = sha256Hex(renderHaproxy(spec, playbook, freshFacts()));
    const kaHash = sha256Hex(renderKeepalived(spec, host(spec, 'master1'), 'ens192', playbook, freshFacts()));
    assert.deepEqual(brief(ops(plan, 'packages')), [{ op: 'run', description: 'install keepalived and haproxy with apt-get' }]);
    assert.deepEqual(brief(ops(plan, 'rundir')), [
      { op: 'write-file', path: TMPF, content: sha256Hex(renderTmpfiles(playbook)), mode: '0644' },
      { op: 'run', description: 'create /run/haproxy' },
    ]);
    assert.deepEqual(ops(plan, 'rundir')[1], { op: 'run', script: '# kha-deploy rundir /run/haproxy\nmkdir -p -m 0755 /run/haproxy', description: 'create /run/haproxy' });
    assert.equal(reason(plan, 'rundir'), 'nothing recreates /run/haproxy at boot; /run/haproxy is missing (haproxy cannot create its stats socket)');
    assert.deepEqual(brief(ops(plan, 'haproxy-config')), [{ op: 'write-file', path: HA, content: haHash, mode: '0644', unit: 'haproxy', validate: 'haproxy -c -f {file}' }]);
    assert.equal(reason(plan, 'haproxy-config'), '/etc/haproxy/haproxy.cfg is missing');
    assert.deepEqual(brief(ops(plan, 'keepalived-config')), [
      {
        op: 'write-file',
        path: KA,
        content: kaHash,
        mode: '0600',
        unit: 'keepalived',
        validate: 'if keepalived --help 2>&1 | grep -q -e --config-test; then keepalived --config-test --use-file={file}; fi',
      },
    ]);
    assert.deepEqual(ops(plan, 'units'), [
      { op: 'service', unit: 'haproxy', action: 'enable-start', recordApplied: haHash },
      { op: 'service', unit: 'keepalived', action: 'enable-start', recordApplied: kaHash },
    ]);
    assert.equal(reason(plan, 'units'), 'haproxy is not running (not installed yet); keepalived is not running (not installed yet)');
  });

  it('the written keepalived.conf uses the detected interface', () => {
    const spec = cluster();
    const plan = planHost(spec, host(spec, 'master1'), freshFacts(), playbook);
    const w = ops(plan, 'keepalived-config')[0] as Extract<Operation, { op: 'write-file' }>;
    assert.match(w.content, /^ {4}interface ens192$/m);
  });

  it('converged host: every step ok, no op at all (idempotence)', () => {
    const spec = cluster();
    const plan = planHost(spec, host(spec, 'master1'), converged(spec), playbook);
    assert.deepEqual(
      plan.steps.map((s) => [s.id, s.ops, s.reason]),
      [
        ['packages', [], ''],
        ['rundir', [], ''],
        ['haproxy-config', [], ''],
        ['keepalived-config', [], ''],
        ['units', [], ''],
      ],
    );
  });

  it('rerun idempotence with the versions in the facts: the same inventory and facts render byte-identical configs, nothing planned', () => {
    const spec = cluster({ haproxyHealthCheck: 'tcp', vrrpPreemptDelay: 30 });
    const facts = converged(spec);
    const write = (f: HostFacts) => planHost(spec, host(spec, 'master1'), f, playbook).steps.flatMap((st) => st.ops);
    assert.deepEqual(write(facts), []);
    assert.deepEqual(write(structuredClone(facts)), [], 'a fresh copy of the same facts');
    // The facts as the host prints them (fixture text with the hashes of this converged host).
    const text = readFileSync(new URL('./fixtures/facts/debian12-converged.txt', import.meta.url), 'utf8')
      .replaceAll('3f1c9f5a2b4d6e8f0a1c3e5b7d9f1a3c5e7b9d1f3a5c7e9b1d3f5a7c9e1b3d5f', facts.files[HA]!)
      .replaceAll('0d2a4c6e8f1b3d5a7c9e2f4b6d8a1c3e5f7b9d2a4c6e8f1b3d5a7c9e2f4b6d8a', facts.files[KA]!);
    const parsed = parseFacts('master1', text, spec.vip);
    assert.deepEqual([parsed.keepalivedVersion, parsed.haproxyVersion, parsed.haproxyPromex, parsed.procEvents], ['2.2.7', '2.6.12', true, true]);
    assert.deepEqual(write({ ...parsed, files: { ...parsed.files, [TMPF]: null } }), []);
  });

  it('converged fake masters of different builds (exporter, container, old keepalived) plan nothing on a rerun', () => {
    const fc = new FakeCluster(cluster(), fastPlaybook(), {
      hosts: { master2: { versions: { promex: true } }, master3: { procEvents: 'no', versions: { keepalived: '2.0.10' } } },
    }).converge();
    for (const h of fc.all()) {
      const facts = parseFacts(h.name, h.factsText(), fc.spec.vip);
      assert.deepEqual(planHost(fc.spec, h.spec, facts, fc.playbook).steps.flatMap((st) => st.ops), [], h.name);
    }
    const ha = (n: string) => fc.host(n).files.get(HA)!;
    const ka = (n: string) => fc.host(n).files.get(KA)!;
    assert.match(ha('master2'), /prometheus-exporter/);
    assert.doesNotMatch(ha('master1'), /prometheus-exporter/);
    assert.match(ka('master1'), /^vrrp_track_process /m);
    assert.match(ka('master3'), /^vrrp_script chk_haproxy \{/m);
  });

  it('the configs follow the installed versions: an upgrade or a missing exporter rewrites them', () => {
    const spec = cluster();
    const facts = converged(spec);
    const steps = (f: HostFacts) => planHost(spec, host(spec, 'master1'), f, playbook).steps.filter((st) => st.ops.length > 0).map((st) => st.id);
    assert.deepEqual(steps({ ...facts, haproxyPromex: false }), ['haproxy-config', 'units']);
    assert.deepEqual(steps({ ...facts, keepalivedVersion: '2.0.10' }), ['keepalived-config', 'units']);
    assert.deepEqual(steps({ ...facts, procEvents: false }), ['keepalived-config', 'units']);
    assert.deepEqual(steps({ ...facts, haproxyVersion: '2.8.3' }), [], 'a newer haproxy renders the same');
    // Before the packages are installed the versions are unknown: the plan renders without the
    // exporter; the runner plans again from the facts read after installing.
    const before = planHost(spec, host(spec, 'master1'), freshFacts(), playbook);
    const w = ops(before, 'haproxy-config')[0] as Extract<Operation, { op: 'write-file' }>;
    assert.doesNotMatch(w.content, /prometheus-exporter/);
    assert.match((ops(before, 'keepalived-config')[0] as Extract<Operation, { op: 'write-file' }>).content, /^vrrp_track_process /m);
  });

  it('only haproxy_balance changed: haproxy.cfg written and haproxy reloaded, keepalived untouched', () => {
    const spec = cluster();
    const facts = converged(spec);
    const changed = cluster({ haproxyBalance: 'leastconn' });
    const plan = planHost(changed, host(changed, 'master1'), facts, playbook);
    const newHash = sha256Hex(renderHaproxy(changed, playbook, facts));
    assert.deepEqual(
      plan.steps.map((s) => [s.id, s.ops.length]),
      [
        ['packages', 0],
        ['rundir', 0],
        ['haproxy-config', 1],
        ['keepalived-config', 0],
        ['units', 1],
      ],
    );
    const w = ops(plan, 'haproxy-config')[0] as Extract<Operation, { op: 'write-file' }>;
    assert.match(w.content, /^ {4}balance leastconn$/m);
    assert.equal(reason(plan, 'haproxy-config'), 'haproxy.cfg differs from the rendered one');
    assert.deepEqual(ops(plan, 'units'), [{ op: 'service', unit: 'haproxy', action: 'reload', recordApplied: newHash }]);
    assert.equal(reason(plan, 'units'), 'haproxy must load the new haproxy.cfg');
  });

  it('a stopped unit is started (and enabled) with the applied hash recorded', () => {
    const spec = cluster();
    const facts = converged(spec);
    facts.units.keepalived = { active: 'failed', enabled: 'enabled', mainPid: 0 };
    const plan = planHost(spec, host(spec, 'master1'), facts, playbook);
    assert.deepEqual(ops(plan, 'units'), [{ op: 'service', unit: 'keepalived', action: 'enable-start', recordApplied: facts.files[KA] }]);
    assert.equal(reason(plan, 'units'), 'keepalived is not running (failed)');
    assert.ok(plan.steps.filter((s) => s.id !== 'units').every((s) => s.ops.length === 0));
  });

  it('a running but disabled unit is enabled, not restarted', () => {
    const spec = cluster();
    const facts = converged(spec);
    facts.units.haproxy = { active: 'active', enabled: 'disabled', mainPid: 790 };
    const plan = planHost(spec, host(spec, 'master1'), facts, playbook);
    assert.deepEqual(ops(plan, 'units'), [{ op: 'service', unit: 'haproxy', action: 'enable' }]);
    assert.equal(reason(plan, 'units'), 'haproxy is not enabled at boot (disabled)');
  });

  it('file already right but the unit never loaded it (an interrupted run): reload only', () => {
    const spec = cluster();
    const facts = converged(spec);
    facts.applied.keepalived = 'f'.repeat(64);
    const plan = planHost(spec, host(spec, 'master1'), facts, playbook);
    assert.deepEqual(
      plan.steps.filter((s) => s.ops.length > 0).map((s) => s.id),
      ['units'],
    );
    assert.deepEqual(ops(plan, 'units'), [{ op: 'service', unit: 'keepalived', action: 'reload', recordApplied: facts.files[KA] }]);
    assert.match(reason(plan, 'units'), /^keepalived has not loaded the current keepalived\.conf/);
  });

  it('no state file yet (host set up by hand with identical files): one reload each, never a restart', () => {
    const spec = cluster();
    const facts = converged(spec);
    facts.applied = { keepalived: null, haproxy: null };
    const plan = planHost(spec, host(spec, 'master1'), facts, playbook);
    assert.deepEqual(
      ops(plan, 'units').map((o) => (o.op === 'service' ? `${o.action} ${o.unit}` : o.op)),
      ['reload haproxy', 'reload keepalived'],
    );
  });

  it('a masked unit is a clear planning error', () => {
    const spec = cluster();
    const facts = converged(spec);
    facts.units.haproxy = { active: 'inactive', enabled: 'masked', mainPid: 0 };
    assert.throws(() => planHost(spec, host(spec, 'master1'), facts, playbook), /haproxy\.service is masked on master1: unmask it/);
  });

  it('rundir: a missing directory with a packaged tmpfiles entry needs only mkdir', () => {
    const spec = cluster();
    const facts = { ...converged(spec), runDirExists: false };
    const plan = planHost(spec, host(spec, 'master1'), facts, playbook);
    assert.deepEqual(ops(plan, 'rundir'), [{ op: 'run', script: '# kha-deploy rundir /run/haproxy\nmkdir -p -m 0755 /run/haproxy', description: 'create /run/haproxy' }]);
  });

  it('rundir: the directory exists but nothing recreates it at boot → our tmpfiles entry only', () => {
    const spec = cluster();
    const facts = { ...converged(spec), runDirPersistent: false };
    const plan = planHost(spec, host(spec, 'master1'), facts, playbook);
    assert.deepEqual(brief(ops(plan, 'rundir')), [{ op: 'write-file', path: TMPF, content: sha256Hex(renderTmpfiles(playbook)), mode: '0644' }]);
    assert.equal(reason(plan, 'rundir'), 'nothing recreates /run/haproxy at boot');
  });

  it('rundir: our own tmpfiles entry is kept current, and left alone when it matches', () => {
    const spec = cluster();
    const stale = { ...converged(spec), files: { ...converged(spec).files, [TMPF]: 'a'.repeat(64) } };
    assert.equal(ops(planHost(spec, host(spec, 'master1'), stale, playbook), 'rundir').length, 1);
    const current = { ...converged(spec), files: { ...converged(spec).files, [TMPF]: sha256Hex(renderTmpfiles(playbook)) } };
    assert.deepEqual(ops(planHost(spec, host(spec, 'master1'), current, playbook), 'rundir'), []);
  });

  it('the inventory interface wins over the detected one', () => {
    const spec = cluster();
    const m2 = host(spec, 'master2');
    assert.equal(m2.vipInterface, 'ens192');
    const facts = { ...freshFacts('master2'), routeInterface: 'eth9', interfaces: [{ name: 'ens192', addrs: ['10.0.0.12/24'] }, { name: 'eth9', addrs: ['10.9.0.12/24'] }] };
    const plan = planHost(spec, m2, facts, playbook);
    const w = ops(plan, 'keepalived-config')[0] as Extract<Operation, { op: 'write-file' }>;
    assert.match(w.content, /^ {4}interface ens192$/m);
    assert.match(w.content, /^ {4}priority 140$/m);
  });

  it('no interface known → a clear error', () => {
    const spec = cluster();
    const facts = { ...freshFacts(), routeInterface: null };
    assert.throws(
      () => planHost(spec, host(spec, 'master1'), facts, playbook),
      new Error('cannot tell which interface reaches the VIP on master1: set vip_interface for it in the inventory'),
    );
  });

  it('an inventory interface without an address on the host → a clear error', () => {
    const spec = cluster();
    const facts = freshFacts('master2');
    assert.throws(() => vipInterface(host(spec, 'master2'), { ...facts, interfaces: [{ name: 'eth0', addrs: ['10.0.0.12/24'] }] }), /interface ens192 \(vip_interface from the inventory\) has no address on master2; interfaces with addresses: eth0/);
  });

  it('no supported package manager → planning fails for that host', () => {
    const spec = cluster();
    assert.throws(() => planHost(spec, host(spec, 'master1'), { ...freshFacts(), pkgManager: null }, playbook), /no supported package manager \(apt-get, dnf, yum\) found on master1/);
  });

  it('follows the playbook step order', () => {
    const spec = cluster();
    const swapped = { ...playbook, steps: [playbook.steps[0]!, playbook.steps[2]!, playbook.steps[1]!, playbook.steps[3]!, playbook.steps[4]!] };
    assert.deepEqual(
      planHost(spec, host(spec, 'master1'), freshFacts(), swapped).steps.map((s) => s.id),
      ['packages', 'haproxy-config', 'rundir', 'keepalived-config', 'units'],
    );
  });
});

describe('sha256Hex', () => {
  it('is the hex sha256 of the UTF-8 text, as sha256sum prints it on the host', () => {
    assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const file = fileURLToPath(new URL('./golden/haproxy.cfg', import.meta.url));
    const onHost = execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(sha256Hex(readFileSync(file, 'utf8')), onHost);
  });
});
