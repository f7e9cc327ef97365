// The VIP-owner preflight (issue 9): its script under the local sh, its parser and verdict.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { foreignVipOwner, parseVipOwnerProbe, vipOwnerProbeScript } from '../../src/gates/vip-owner.js';

describe('vipOwnerProbeScript', () => {
  it('runs under sh: a local address is "self"; every interface with a MAC is listed', () => {
    const out = execFileSync('sh', ['-c', vipOwnerProbeScript('127.0.0.1', 8443)], { encoding: 'utf8' });
    const a = parseVipOwnerProbe(out);
    assert.ok(a, out);
    assert.equal(a.self, true);
    for (const m of a.macs) assert.match(m, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
  });
  it('an address this host does not hold: not "self", and done within the ping deadline', () => {
    // What answers for TEST-NET-1 depends on the machine's network (a proxy-ARP gateway may): not asserted.
    const t0 = Date.now();
    const out = execFileSync('sh', ['-c', vipOwnerProbeScript('192.0.2.1', 8443)], { encoding: 'utf8' });
    assert.ok(Date.now() - t0 < 3000);
    assert.equal(parseVipOwnerProbe(out)?.self, false);
  });
});

describe('parseVipOwnerProbe / foreignVipOwner', () => {
  const link = (mac: string) => `@@KHA-LINK eth0 ${mac}\n@@KHA-LINK lo 00:00:00:00:00:00\n`;
  it('reads REACHABLE only (a STALE or FAILED entry proves nothing now)', () => {
    assert.equal(parseVipOwnerProbe(`@@KHA-VIPNEIGH 10.0.0.100 dev eth0 lladdr 52:54:00:AA:bb:cc REACHABLE\n${link('02:42:ac:10:56:0b')}`)?.reachableMac, '52:54:00:aa:bb:cc');
    assert.equal(parseVipOwnerProbe(`@@KHA-VIPNEIGH 10.0.0.100 dev eth0 lladdr 52:54:00:aa:bb:cc STALE\n`)?.reachableMac, undefined);
    assert.equal(parseVipOwnerProbe(`@@KHA-VIPNEIGH 10.0.0.100 dev eth0 FAILED\n`)?.reachableMac, undefined);
    assert.deepEqual(parseVipOwnerProbe(link('02:42:ac:10:56:0b'))?.macs, ['02:42:ac:10:56:0b']);
    assert.equal(parseVipOwnerProbe('nothing of ours'), undefined);
  });
  it('a MAC that is one of the masters is not foreign; another one is, named with who saw it', () => {
    const m1 = parseVipOwnerProbe(`@@KHA-VIPNEIGH self\n${link('02:00:00:00:00:01')}`);
    const m2 = parseVipOwnerProbe(`@@KHA-VIPNEIGH 10.0.0.100 dev eth0 lladdr 02:00:00:00:00:01 REACHABLE\n${link('02:00:00:00:00:02')}`);
    assert.equal(foreignVipOwner([{ host: 'm1', answer: m1 }, { host: 'm2', answer: m2 }]), undefined);
    const m3 = parseVipOwnerProbe(`@@KHA-VIPNEIGH 10.0.0.100 dev eth0 lladdr 52:54:00:aa:bb:cc REACHABLE\n${link('02:00:00:00:00:03')}`);
    assert.deepEqual(foreignVipOwner([{ host: 'm1', answer: m1 }, { host: 'm2', answer: m2 }, { host: 'm3', answer: m3 }]), { mac: '52:54:00:aa:bb:cc', seenFrom: ['m3'] });
  });
});
