// vrrp_unicast with masters named by DNS names: resolved on the controller to the IP literals keepalived
// needs (unicast_src_ip, unicast_peer), through an injected lookup and through the system's resolver.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadInventory } from '../../src/inventory/load.js';
import { resolveUnicastAddresses, type Lookup } from '../../src/inventory/resolve.js';
import { InventoryError } from '../../src/errors.js';
import { renderKeepalived } from '../../src/render.js';
import { loadPlaybook } from '../../src/playbook.js';

function inventory(vars: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'kha-resolve-'));
  const file = join(dir, 'hosts.ini');
  writeFileSync(
    file,
    ['[masters]', 'master1 ansible_host=m1.example.test', 'master2 ansible_host=10.0.0.12', 'master3 ansible_host=m3.example.test', '', '[masters:vars]', 'vip=10.0.0.100', vars, ''].join('\n'),
  );
  return file;
}

const table: Record<string, string> = { 'm1.example.test': '10.0.0.11', 'm3.example.test': '10.0.0.13' };
const lookup: Lookup = async (name, family) => {
  assert.equal(family, 4);
  const ip = table[name];
  if (!ip) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND' });
  return ip;
};
const opts = { env: {}, home: '/nonexistent', lookup };

describe('vrrp_unicast with names', () => {
  it('names resolve to the IP literals keepalived gets; SSH keeps the names', async () => {
    const spec = await loadInventory(inventory('vrrp_unicast=true'), opts);
    assert.deepEqual(spec.hosts.map((h) => [h.address, h.vrrpAddress ?? null]), [['m1.example.test', '10.0.0.11'], ['10.0.0.12', null], ['m3.example.test', '10.0.0.13']]);
    const conf = renderKeepalived(spec, spec.hosts[0]!, 'eth0', loadPlaybook());
    assert.match(conf, /unicast_src_ip 10\.0\.0\.11\n/);
    assert.match(conf, /unicast_peer \{\n\s+10\.0\.0\.12\n\s+10\.0\.0\.13\n\s+\}/);
    assert.doesNotMatch(conf, /example\.test/);
  });
  it('without vrrp_unicast nothing is resolved (multicast needs no peer list)', async () => {
    const spec = await loadInventory(inventory(''), { ...opts, lookup: () => Promise.reject(new Error('must not be called')) });
    assert.ok(spec.hosts.every((h) => h.vrrpAddress === undefined));
  });
  it('a name that does not resolve: exit 2 naming the host, the name and the resolver error', async () => {
    table['m3.example.test'] = '';
    delete table['m3.example.test'];
    const err = await loadInventory(inventory('vrrp_unicast=true'), opts).catch((e: unknown) => e);
    assert.ok(err instanceof InventoryError, String(err));
    assert.equal(err.exitCode, 2);
    assert.match(err.problems[0]!.message, /master3's IPv4 address .* its name m3\.example\.test does not resolve \(ENOTFOUND\)/);
    table['m3.example.test'] = '10.0.0.13';
  });
  it('two masters resolving to one address, or a master to the VIP: exit 2', async () => {
    const spec = await loadInventory(inventory('vrrp_unicast=true'), opts);
    const same: Lookup = async () => '10.0.0.12';
    await assert.rejects(resolveUnicastAddresses({ ...spec, hosts: spec.hosts.map(({ vrrpAddress: _, ...h }) => h) }, same), /both resolve to 10\.0\.0\.12/);
    const vip: Lookup = async () => '10.0.0.100';
    await assert.rejects(resolveUnicastAddresses({ ...spec, hosts: spec.hosts.map(({ vrrpAddress: _, ...h }) => h) }, vip), /resolves to the VIP 10\.0\.0\.100/);
  });
  it("the system's resolver: localhost resolves (no network involved)", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-resolve-'));
    const file = join(dir, 'hosts.ini');
    writeFileSync(file, ['[masters]', 'master1 ansible_host=localhost', 'master2 ansible_host=127.0.0.2', '', '[masters:vars]', 'vip=127.0.0.100', 'vrrp_unicast=true', ''].join('\n'));
    const spec = await loadInventory(file, { env: {}, home: '/nonexistent' });
    assert.equal(spec.hosts[0]!.vrrpAddress, '127.0.0.1');
  });
});
