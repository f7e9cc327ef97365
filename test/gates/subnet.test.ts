import assert from 'node:assert/strict';
import { it } from 'node:test';
import { vipSubnetProblem } from '../../src/gates/subnet.js';

it('accepts a VIP inside the interface subnet', () => {
  assert.equal(vipSubnetProblem([{ name: 'eth0', addrs: ['172.16.86.11/24'] }], 'eth0', '172.16.86.100'), undefined);
});
it('flags an interface whose addresses are in another subnet', () => {
  const p = vipSubnetProblem([{ name: 'eth0', addrs: ['10.0.0.5/24'] }], 'eth0', '172.16.86.100');
  assert.match(p!.message, /no address in the VIP's subnet \(10\.0\.0\.5\/24\)/);
});
it('flags a missing interface', () => {
  assert.match(vipSubnetProblem([], 'eth9', '172.16.86.100')!.message, /eth9 has no address/);
});
it('handles IPv6', () => {
  assert.equal(vipSubnetProblem([{ name: 'eth0', addrs: ['fd00:86::11/64'] }], 'eth0', 'fd00:86::100'), undefined);
  assert.ok(vipSubnetProblem([{ name: 'eth0', addrs: ['fd00:99::11/64'] }], 'eth0', 'fd00:86::100'));
});
