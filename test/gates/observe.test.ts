import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FactsParseError } from '../../src/facts.js';
import {
  diagnoseKeepalivedJournal,
  diagnoseKubectl,
  interfacesHolding,
  judgePlacement,
  observeScript,
  judgeHealth,
  parseObservation,
  parseStatsCsv,
  vipUrl,
} from '../../src/gates/observe.js';
import type { ClusterSpec } from '../../src/types.js';

const spec = {
  vip: '172.16.86.100',
  family: 4,
  vipPort: 8443,
  apiserverPort: 6443,
  kubeconfig: '/etc/kubernetes/admin.conf',
  virtualRouterId: 51,
} as ClusterSpec;

const IP_WITH_VIP = `1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever
2: eth0    inet 172.16.86.11/24 brd 172.16.86.255 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet 172.16.86.100/32 scope global eth0\\       valid_lft forever preferred_lft forever
2: eth0    inet6 fe80::42:acff:fe10:560b/64 scope link \\       valid_lft forever preferred_lft forever`;

describe('observe', () => {
  it('finds the interface holding the VIP and not a prefix look-alike', () => {
    assert.deepEqual(interfacesHolding(IP_WITH_VIP, '172.16.86.100'), ['eth0']);
    assert.deepEqual(interfacesHolding(IP_WITH_VIP, '172.16.86.10'), []);
    assert.deepEqual(interfacesHolding(IP_WITH_VIP, '172.16.86.1'), []);
  });

  it('strips @ifN from interface names', () => {
    assert.deepEqual(interfacesHolding('5: ens192@if106    inet 10.0.0.5/32 scope global ens192', '10.0.0.5'), ['ens192']);
  });

  it('builds a kubectl call forced through the VIP, quoting the kubeconfig', () => {
    const s = observeScript({ ...spec, kubeconfig: "/etc/k8s/it's.conf" }, true);
    assert.match(s, /--server https:\/\/172\.16\.86\.100:8443/);
    assert.ok(s.includes(`--kubeconfig '/etc/k8s/it'\\''s.conf'`));
    assert.equal(observeScript(spec, false), '# kha-deploy observe addr\necho @@KHA-OBSERVE\nip -o addr show');
  });

  it('skips what a chatty login shell printed before the marker, and refuses output without it', () => {
    const o = parseObservation('m1', `Welcome!\n1: lo inet 9.9.9.9/8\n@@KHA-OBSERVE\n${IP_WITH_VIP}\n`, spec.vip);
    assert.deepEqual(o.vipOn, ['eth0']);
    assert.throws(
      () => parseObservation('m1', 'Welcome!\nconda activated\n', spec.vip),
      (e: Error) => e instanceof FactsParseError && e.host === 'm1' && /"Welcome!", "conda activated"/.test(e.message),
    );
  });

  it('brackets an IPv6 VIP in the URL', () => {
    assert.equal(vipUrl({ ...spec, vip: 'fd00::100', family: 6 }), 'https://[fd00::100]:8443');
  });

  it('parses old and new kubectl Server Version formats', () => {
    const old = parseObservation(
      'm1',
      `@@KHA-OBSERVE\n${IP_WITH_VIP}\n@@KHA-KUBECTL\nClient Version: version.Info{Major:"1", GitVersion:"v1.20.2"}\nServer Version: version.Info{Major:"1", Minor:"30", GitVersion:"v1.30.0", GitCommit:"x"}\n@@KHA-RC=0\n`,
      spec.vip,
    );
    assert.equal(old.kubectl?.ok, true);
    assert.equal(old.kubectl?.serverVersion, 'v1.30.0');
    assert.deepEqual(old.vipOn, ['eth0']);
    const modern = parseObservation('m1', `@@KHA-OBSERVE\n@@KHA-KUBECTL\nClient Version: v1.31.0\nServer Version: v1.30.2\n@@KHA-RC=0`, spec.vip);
    assert.equal(modern.kubectl?.serverVersion, 'v1.30.2');
  });

  it('treats a non-zero kubectl exit as failure even with partial output', () => {
    const o = parseObservation('m1', `@@KHA-OBSERVE\n@@KHA-KUBECTL\nClient Version: v1.20.2\nUnable to connect to the server: dial tcp 172.16.86.100:8443: connect: connection refused\n@@KHA-RC=1`, spec.vip);
    assert.equal(o.kubectl?.ok, false);
    assert.equal(o.kubectl?.exitCode, 1);
    assert.match(o.kubectl!.output, /connection refused/);
  });
});

describe('judgePlacement', () => {
  const obs = (h: Record<string, string[]>) => Object.entries(h).map(([host, vipOn]) => ({ host, vipOn }));
  it('passes when only the expected host holds the VIP on the expected interface', () => {
    assert.deepEqual(judgePlacement(obs({ m1: ['eth0'], m2: [], m3: [] }), spec.vip, 'm1', 'eth0'), { ok: true, holder: 'm1' });
  });
  it('reports split brain loudly, naming every holder', () => {
    const v = judgePlacement(obs({ m1: ['eth0'], m2: ['eth0'], m3: [] }), spec.vip, 'm1');
    assert.equal(v.ok, false);
    assert.ok(!v.ok && v.kind === 'split-brain');
    assert.match(!v.ok ? v.message : '', /SPLIT BRAIN.*m1, m2/);
  });
  it('reports nobody and the wrong host', () => {
    const none = judgePlacement(obs({ m1: [], m2: [] }), spec.vip, 'm1');
    assert.ok(!none.ok && none.kind === 'nobody');
    const wrong = judgePlacement(obs({ m1: [], m2: ['eth0'] }), spec.vip, 'm1');
    assert.ok(!wrong.ok && wrong.kind === 'wrong-host' && wrong.holders[0] === 'm2');
  });
  it('checks the interface', () => {
    const v = judgePlacement(obs({ m1: ['eth1'] }), spec.vip, 'm1', 'eth0');
    assert.ok(!v.ok && v.kind === 'wrong-interface');
  });
  it('accepts any single holder when the primary is outside --limit', () => {
    assert.deepEqual(judgePlacement(obs({ m2: [], m3: [] }), spec.vip, undefined), { ok: true, holder: '' });
  });
});

describe('diagnosis', () => {
  it('names the missing SAN and the kubeadm/kubeasz fixes on an x509 error', () => {
    const d = diagnoseKubectl(spec, {
      ok: false,
      exitCode: 1,
      output: 'Unable to connect to the server: x509: certificate is valid for 172.16.86.11, 127.0.0.1, not 172.16.86.100',
    });
    assert.match(d.message, /subjectAltNames/);
    assert.match(d.hint, /apiServer\.certSANs/);
    assert.match(d.hint, /MASTER_CERT_HOSTS/);
  });
  it('falls back to a haproxy hint for a refused connection', () => {
    const d = diagnoseKubectl(spec, { ok: false, exitCode: 1, output: 'connection refused' });
    assert.match(d.hint, /:8443/);
  });
  it('recognizes a VRID collision in the keepalived journal', () => {
    const d = diagnoseKeepalivedJournal(
      'Nov 29 10:00:01 m1 Keepalived_vrrp[77]: (VI-kube-master) ip address associated with VRID 51 not present in MASTER advert : 172.16.86.100',
      51,
    );
    assert.match(d!.message, /virtual_router_id 51/);
    assert.equal(diagnoseKeepalivedJournal('Nov 29 (VI-kube-master) Entering BACKUP STATE', 51), undefined);
  });
});

describe('the load-balancer path (health sections)', () => {
  const HEADER =
    '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,';
  const row = (px: string, sv: string, status: string, check: string) => `${px},${sv},0,0,0,0,,0,0,0,,0,,0,0,0,0,${status},1,1,0,0,0,10,0,,1,2,1,,0,,2,0,,0,${check},200,1,`;
  const stats = [HEADER, row('monitor', 'FRONTEND', 'OPEN', ''), row('kube-master', 'FRONTEND', 'OPEN', ''), row('kube-master', 'master1', 'UP', 'L7OK'), row('kube-master', 'master2', 'DOWN', '* L7STS'), row('kube-master', 'master3', 'UP', 'L7OK'), row('kube-master', 'BACKEND', 'UP', '')];
  const health = (o: { active?: string; log?: string[]; serve?: string; csv?: string[] | null }) =>
    [
      '@@KHA-VRRP',
      `ActiveState=${o.active ?? 'active'}`,
      'InvocationID=f9ce79500ebd4abcadb95a865fb19005',
      '@@KHA-VRRP-LOG',
      ...(o.log ?? ['(VI-kube-master) Entering BACKUP STATE (init)', '(VI-kube-master) Entering MASTER STATE']),
      '@@KHA-SERVE',
      o.serve ?? '200',
      '@@KHA-STATS',
      ...(o.csv === null ? [] : (o.csv ?? [HEADER, row('kube-master', 'master1', 'UP', 'L7OK')])),
    ].join('\n');
  const observe = (host: string, holds: boolean, h: Parameters<typeof health>[0]) =>
    parseObservation(host, `@@KHA-OBSERVE\n${holds ? IP_WITH_VIP : '2: eth0    inet 172.16.86.12/24 brd 172.16.86.255 scope global eth0'}\n${health(h)}\n@@KHA-KUBECTL\nServer Version: v1.30.0\n@@KHA-RC=0\n`, spec.vip);

  it('observeScript asks for the health sections only when given a probe, quoting the URLs', () => {
    const s = observeScript(spec, true, { address: '172.16.86.11', vipPort: 8443, monitorPort: 8404 });
    assert.match(s, /^# kha-deploy observe kubectl health\n/);
    assert.ok(s.includes("'http://127.0.0.1:8404/stats;csv'"));
    assert.ok(s.includes('https://172.16.86.11:8443/readyz'));
    assert.doesNotMatch(observeScript(spec, true), /@@KHA-VRRP/);
  });

  it('parses haproxy CSV: only the apiserver proxy servers, with their check status', () => {
    assert.deepEqual(parseStatsCsv(stats), [
      { name: 'master1', status: 'UP', checkStatus: 'L7OK' },
      { name: 'master2', status: 'DOWN', checkStatus: 'L7STS' },
      { name: 'master3', status: 'UP', checkStatus: 'L7OK' },
    ]);
    assert.equal(parseStatsCsv(['curl: (7) Failed to connect']), undefined);
  });

  it('parses the VRRP state, the own-haproxy answer and the backends, and keeps the address part intact', () => {
    const o = observe('master1', true, {});
    assert.deepEqual(o.vipOn, ['eth0']);
    assert.equal(o.kubectl?.serverVersion, 'v1.30.0');
    assert.equal(o.health?.vrrpState, 'MASTER');
    assert.equal(o.health?.serveCode, '200');
    assert.deepEqual(o.health?.backends, [{ name: 'master1', status: 'UP', checkStatus: 'L7OK' }]);
  });

  it('reads the health sections after kubectl too (the order observeScript prints them in), without mixing the two', () => {
    const o = parseObservation('master1', `@@KHA-OBSERVE\n${IP_WITH_VIP}\n@@KHA-KUBECTL\nServer Version: v1.30.0\n@@KHA-RC=0\n${health({ serve: '503' })}\n`, spec.vip);
    assert.deepEqual(o.vipOn, ['eth0']);
    assert.equal(o.kubectl?.ok, true);
    assert.equal(o.kubectl?.output, 'Server Version: v1.30.0');
    assert.equal(o.health?.vrrpState, 'MASTER');
    assert.equal(o.health?.serveCode, '503');
  });

  it('observeScript runs the health sections in the background during kubectl, and prints them after it', () => {
    const s = observeScript(spec, true, { address: '172.16.86.11', vipPort: 8443, monitorPort: 8404 });
    assert.ok(s.indexOf('kha_hp=$!') < s.indexOf('@@KHA-KUBECTL') && s.indexOf('@@KHA-KUBECTL') < s.indexOf('wait "$kha_hp"'));
  });

  it('judgeHealth: a healthy MASTER and BACKUP pass', () => {
    const obs = [observe('master1', true, {}), observe('master2', false, { log: ['(VI-kube-master) Entering BACKUP STATE (init)'] })];
    assert.deepEqual(judgeHealth(obs, 'master1', ['master1', 'master2'], 8443), []);
  });

  it('judgeHealth: FAULT names the failing track; a DOWN backend names its check; a silent own haproxy is named', () => {
    const obs = [
      observe('master1', true, { csv: stats }),
      observe('master2', false, { log: ['(VI-kube-master) Entering BACKUP STATE (init)', 'VRRP_Script(chk_apiserver) failed (exited with status 7)', '(VI-kube-master) Entering FAULT STATE'], serve: '000' }),
      observe('master3', false, { active: 'inactive', log: [] }),
    ];
    const problems = judgeHealth(obs, 'master1', ['master1', 'master2', 'master3'], 8443);
    const text = problems.map((p) => `${p.host}: ${p.message}`).join('\n');
    assert.match(text, /master1: haproxy on master1 sees master2 DOWN \(L7STS\)/);
    assert.match(text, /master2: keepalived on master2 is in FAULT state \(VRRP_Script\(chk_apiserver\) failed \(exited with status 7\)\)/);
    assert.match(text, /master2: master2's own haproxy does not serve: .*nothing answered/);
    assert.match(text, /master3: keepalived is not running on master3 \(inactive\)/);
    assert.deepEqual(judgeHealth(obs, 'master1', ['master1'], 8443).map((p) => p.host), ['master1'], 'only the hosts asked about');
  });

  it('judgeHealth: any HTTP answer through the own haproxy counts as serving (401 where anonymous /readyz is refused); silence does not', () => {
    for (const serve of ['200', '401', '403', '500']) assert.deepEqual(judgeHealth([observe('master1', true, { serve })], 'master1', ['master1'], 8443), [], serve);
    for (const serve of ['000', '']) assert.equal(judgeHealth([observe('master1', true, { serve })], 'master1', ['master1'], 8443).length, 1, serve);
  });

  it('judgeHealth: the holder must say MASTER, the others BACKUP', () => {
    const wrong = [observe('master1', true, { log: ['(VI-kube-master) Entering BACKUP STATE (init)'] }), observe('master2', false, {})];
    const text = judgeHealth(wrong, 'master1', ['master1', 'master2'], 8443).map((p) => p.message).join('\n');
    assert.match(text, /master1 holds the VIP but keepalived there says BACKUP, not MASTER/);
    assert.match(text, /keepalived on master2 says MASTER but master1 holds the VIP/);
  });
});
