// Does the interface keepalived uses carry an address in the VIP's subnet? (pure)
import { BlockList, isIPv4 } from 'node:net';
import type { InterfaceFacts } from '../types.js';

export function vipSubnetProblem(
  interfaces: readonly InterfaceFacts[],
  iface: string,
  vip: string,
): { message: string; hint: string } | undefined {
  const it = interfaces.find((i) => i.name === iface);
  if (!it || it.addrs.length === 0) {
    return {
      message: `interface ${iface} has no address`,
      hint: `set vip_interface to the interface that carries the masters' subnet ('ip -o addr' on the host)`,
    };
  }
  const type = isIPv4(vip) ? 'ipv4' : 'ipv6';
  for (const cidr of it.addrs) {
    const [addr, len] = cidr.split('/');
    if (!addr || !len || isIPv4(addr) !== (type === 'ipv4')) continue;
    if (addr === vip) return undefined;
    const bl = new BlockList();
    bl.addSubnet(addr, Number(len), type);
    if (bl.check(vip, type)) return undefined;
  }
  return {
    message: `interface ${iface} has no address in the VIP's subnet (${it.addrs.join(', ')})`,
    hint: `the VIP must be a free address in the masters' subnet: choose another vip, or set vip_interface to the interface on that subnet`,
  };
}
