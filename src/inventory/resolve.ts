// vrrp_unicast with masters named by DNS names (issue 9): keepalived's unicast_src_ip and unicast_peer take
// IP literals only, so each such name is resolved here, on the controller, the way the SSH connection to it
// resolves it, before any host is touched. A name that does not resolve, or resolves to the VIP or to
// another master's address, is an inventory problem (exit 2).
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { InventoryError, type InventoryProblem } from '../errors.js';
import type { ClusterSpec } from '../types.js';

/** Resolves `name` to one address of `family`. */
export type Lookup = (name: string, family: 4 | 6) => Promise<string>;

const systemLookup: Lookup = async (name, family) => (await dnsLookup(name, { family })).address;

/** The spec with `vrrpAddress` set on every master whose address is a name (unchanged without vrrp_unicast). */
export async function resolveUnicastAddresses(spec: ClusterSpec, lookup: Lookup = systemLookup): Promise<ClusterSpec> {
  if (spec.vrrpUnicast !== true || spec.hosts.every((h) => isIP(h.address) !== 0)) return spec;
  const problems: InventoryProblem[] = [];
  const hosts = await Promise.all(
    spec.hosts.map(async (h) => {
      if (isIP(h.address) !== 0) return h;
      try {
        return { ...h, vrrpAddress: await lookup(h.address, spec.family) };
      } catch (err) {
        problems.push({
          line: h.line,
          variable: h.name,
          message: `vrrp_unicast needs ${h.name}'s IPv${spec.family} address for unicast_src_ip and unicast_peer, but its name ${h.address} does not resolve (${(err as { code?: string }).code ?? (err as Error).message})`,
          hint: `set ansible_host=<its IP address in the VIP's subnet> for ${h.name}, or fix its DNS record`,
        });
        return h;
      }
    }),
  );
  const seen = new Map<string, string>();
  for (const h of hosts) {
    const ip = h.vrrpAddress ?? h.address;
    if (ip === spec.vip) problems.push({ line: h.line, variable: h.name, message: `${h.name}'s name ${h.address} resolves to the VIP ${spec.vip}`, hint: 'the VIP must be a free address: fix the DNS record or set ansible_host' });
    const other = seen.get(ip);
    if (other) problems.push({ line: h.line, variable: h.name, message: `${h.name} and ${other} both resolve to ${ip}: keepalived's unicast peers must be distinct masters`, hint: 'fix the DNS records or set ansible_host' });
    seen.set(ip, h.name);
  }
  if (problems.length > 0) throw new InventoryError(spec.file, problems);
  return { ...spec, hosts };
}
