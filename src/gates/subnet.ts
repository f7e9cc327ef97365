// Does the interface keepalived uses carry an address in the VIP's subnet? (pure)
import { BlockList, isIPv4 } from 'node:net';
import { HostStepError, ManyErrors } from '../errors.js';
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

/**
 * Network preflight (issue 9): on every master, the interface keepalived will use carries an address in
 * the VIP's subnet. Checked from the facts, before the first change (the gate would otherwise find
 * out only after the first master failed to take the VIP). Throws ManyErrors naming every such master.
 */
export function preflightSubnet(opts: { vip: string; hosts: readonly { name: string; iface: string; interfaces: readonly InterfaceFacts[] }[] }): void {
  const errors = opts.hosts.flatMap((h) => {
    const p = vipSubnetProblem(h.interfaces, h.iface, opts.vip);
    return p ? [new HostStepError(h.name, 'preflight', `${p.message} on ${h.name}: keepalived could not hold the VIP ${opts.vip} there`, { hint: p.hint })] : [];
  });
  if (errors.length > 0) throw new ManyErrors(errors, `the VIP ${opts.vip} is not in the subnet of ${errors.length === 1 ? "one master's interface" : `${errors.length} masters' interfaces`}: no host was changed`);
}
