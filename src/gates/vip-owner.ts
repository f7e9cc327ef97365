// Network preflight (issue 9): is the VIP already answered for by a machine that is not a master?
// Checked from every master in the lock + facts command (in the background, like the /readyz probe):
// a master that does not hold the VIP sends it one packet (ping, else a TCP connect through bash's
// /dev/tcp: whichever the host has) after dropping its cached neighbour entry for the VIP, so the
// kernel resolves it afresh by ARP/NDP, then prints what
// `ip neigh show VIP` says; every master also prints the MAC addresses of its interfaces. A REACHABLE
// neighbour whose MAC is none of the masters' → refuse before any host is changed, naming the MAC.
import { HostStepError, ManyErrors } from '../errors.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec, HostSpec, RunEvent } from '../types.js';

const NEIGH = '@@KHA-VIPNEIGH';
const LINK = '@@KHA-LINK';

/** POSIX sh: `@@KHA-VIPNEIGH self` on a holder, else one `@@KHA-VIPNEIGH LINE` per `ip neigh` line; `@@KHA-LINK IFACE MAC` per interface. */
export function vipOwnerProbeScript(vip: string, port: number): string {
  const v = shellQuote(vip);
  const hostPart = vip.includes(':') ? `[${vip}]` : vip;
  return [
    scriptTag('preflight', 'vip-owner', vip),
    `if ip -o addr show 2>/dev/null | grep -qF ${shellQuote(` ${vip}/`)}; then echo '${NEIGH} self'`,
    'else',
    // A cached entry (the VIP's last holder) would be reused unconfirmed: forget it (a cache only), so the
    // one packet below makes the kernel ask again by ARP/NDP who has the VIP now (the answer itself does not matter).
    `  ip neigh flush to ${v} >/dev/null 2>&1 || :`,
    `  if command -v ping >/dev/null 2>&1; then ping -c 1 -W 1 ${v} >/dev/null 2>&1 || :`,
    `  elif command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then timeout 1 bash -c ${shellQuote(`exec 3<>/dev/tcp/${hostPart}/${port}`)} >/dev/null 2>&1 || :`,
    '  fi',
    `  ip neigh show ${v} 2>/dev/null | while IFS= read -r kha_l; do printf '%s %s\\n' '${NEIGH}' "$kha_l"; done`,
    'fi',
    // `2: eth0: <…> … link/ether 02:42:ac:10:56:0b brd …` (one line each with -o).
    `ip -o link show 2>/dev/null | sed -n 's/^[0-9]*: \\([^:@ ]*\\)[^ ]*: .* link\\/[a-z]* \\([0-9a-fA-F:]*\\) .*/${LINK} \\1 \\2/p'`,
  ].join('\n');
}

export interface VipOwnerAnswer {
  /** This master holds the VIP itself. */
  self: boolean;
  /** MAC of a REACHABLE neighbour entry for the VIP (the kernel just heard from it), if any. */
  reachableMac?: string;
  /** MACs of this master's interfaces (lower case). */
  macs: string[];
}

export function parseVipOwnerProbe(output: string): VipOwnerAnswer | undefined {
  const lines = output.split('\n').map((l) => l.replace(/\r$/, ''));
  const neigh = lines.filter((l) => l.startsWith(`${NEIGH} `)).map((l) => l.slice(NEIGH.length + 1));
  const links = lines.filter((l) => l.startsWith(`${LINK} `));
  if (neigh.length === 0 && links.length === 0) return undefined;
  const macs = links.flatMap((l) => {
    const mac = l.split(' ')[2]?.toLowerCase();
    return mac && mac !== '00:00:00:00:00:00' ? [mac] : [];
  });
  const answer: VipOwnerAnswer = { self: neigh.includes('self'), macs };
  for (const n of neigh) {
    const m = /\blladdr\s+([0-9a-f:]+)\b.*\bREACHABLE\b/i.exec(n);
    if (m) answer.reachableMac = m[1]!.toLowerCase();
  }
  return answer;
}

/** A MAC seen answering for the VIP that belongs to no master (pure). */
export function foreignVipOwner(answers: readonly { host: string; answer: VipOwnerAnswer | undefined }[]): { mac: string; seenFrom: string[] } | undefined {
  const ours = new Set(answers.flatMap((a) => a.answer?.macs ?? []));
  const seen = new Map<string, string[]>();
  for (const a of answers) {
    const mac = a.answer?.reachableMac;
    if (!mac || ours.has(mac)) continue;
    seen.set(mac, [...(seen.get(mac) ?? []), a.host]);
  }
  const first = [...seen][0];
  return first ? { mac: first[0], seenFrom: first[1] } : undefined;
}

/**
 * Refuse a VIP a machine other than the masters answers for (before any change). With masters left
 * out by --limit a foreign MAC may be one of them: then it is a warning, not a refusal.
 */
export function preflightVipOwner(opts: {
  spec: Pick<ClusterSpec, 'vip' | 'hosts'>;
  answers: readonly { spec: HostSpec; output: string }[];
  emit: (e: RunEvent) => void;
}): void {
  const parsed = opts.answers.map((a) => ({ host: a.spec.name, answer: parseVipOwnerProbe(a.output) }));
  const foreign = foreignVipOwner(parsed);
  if (!foreign) return;
  const everyMaster = opts.spec.hosts.every((h) => opts.answers.some((a) => a.spec.name === h.name));
  const message = `the VIP ${opts.spec.vip} is already in use: MAC ${foreign.mac} answers for it (seen from ${foreign.seenFrom.join(', ')}), and that MAC is none of the masters'`;
  if (!everyMaster) {
    opts.emit({ type: 'warning', host: foreign.seenFrom[0]!, message: `${message}; it may be a master outside --limit` });
    return;
  }
  const err = new HostStepError(foreign.seenFrom[0]!, 'preflight', message, {
    seen: `ip neigh show ${opts.spec.vip}: lladdr ${foreign.mac} REACHABLE`,
    hint: `find the machine with MAC ${foreign.mac} (the switch's MAC table, or 'ip neigh' on a router) and free ${opts.spec.vip}, or choose an unused vip; keepalived would otherwise fight it for the address`,
  });
  throw new ManyErrors([err], `the VIP ${opts.spec.vip} is in use by a machine that is not a master: no host was changed`);
}
