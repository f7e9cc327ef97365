// Keeping the VIP answered on its holder while a managed instance move recreates the holder's VRRP
// instance (issue 9): the reload deletes the old instance and its VIP at once, and the new instance
// claims it only after its master-down interval (3 × advert_int + skew, ≈ 3.4 s). A copy of the VIP on
// `lo` keeps the holder answering meanwhile (the kernel answers ARP on eth0 for any local address while
// arp_ignore is 0, the default; with arp_ignore set, and for IPv6, whose NDP answers per interface, the
// clients' neighbour caches still point here for those seconds). On lo, not beside keepalived's address on its interface: keepalived takes the deletion of an
// address equal to its VIP on its own interface for the loss of the VIP and drops to BACKUP (seen on the
// lab: a 0.45 s gap). It is removed as soon as the new instance holds the VIP again; a systemd timer
// removes it anyway after a deadline, should this run die in between.
import { scriptTag, shellQuote } from './shell.js';

export const HOLD_UNIT = 'kha-deploy-vip-hold';

function holdAddress(vip: string): string {
  return vip.includes(':') ? `${vip}/128` : `${vip}/32`;
}

const HOLD_DEV = 'lo';

/** Adds the holding copy of the VIP, with its dead-man timer; without a timer there is no hold (exit 1). */
export function holdVipScript(vip: string, iface: string, deadmanSeconds: number): string {
  const addr = shellQuote(holdAddress(vip));
  const dev = HOLD_DEV;
  const v6 = vip.includes(':') ? ' nodad' : '';
  return [
    scriptTag('vip-hold', 'add', vip, iface),
    'set -u',
    `systemctl stop ${HOLD_UNIT}.timer >/dev/null 2>&1 || :`,
    `systemctl reset-failed ${HOLD_UNIT}.service ${HOLD_UNIT}.timer >/dev/null 2>&1 || :`,
    `ip addr del ${addr} dev ${dev} >/dev/null 2>&1 || :`,
    `systemd-run --quiet --unit=${HOLD_UNIT} --on-active=${Math.ceil(deadmanSeconds)} "$(command -v ip)" addr del ${addr} dev ${dev} || exit 1`,
    `ip addr add ${addr} dev ${dev}${v6} || { systemctl stop ${HOLD_UNIT}.timer >/dev/null 2>&1; exit 1; }`,
  ].join('\n');
}

/**
 * Waits (at most `waitSeconds`) until keepalived's own VIP/32 (/128) is back on `iface`, then removes the
 * holding copy and its timer. Prints `@@KHA-VIPHOLD back` or `@@KHA-VIPHOLD not-back`.
 */
export function releaseVipScript(vip: string, iface: string, waitSeconds: number): string {
  const own = ` ${vip}/${vip.includes(':') ? 128 : 32} `;
  const tenths = Math.max(1, Math.ceil(waitSeconds * 10));
  return [
    scriptTag('vip-hold', 'release', vip, iface),
    'set -u',
    'kha_i=0 kha_back=not-back',
    `while [ "$kha_i" -lt ${tenths} ]; do`,
    `  if ip -o addr show dev ${shellQuote(iface)} 2>/dev/null | grep -qF ${shellQuote(own)}; then kha_back=back; break; fi`,
    '  kha_i=$((kha_i + 1)); sleep 0.1',
    'done',
    `ip addr del ${shellQuote(holdAddress(vip))} dev ${HOLD_DEV} >/dev/null 2>&1 || :`,
    `systemctl stop ${HOLD_UNIT}.timer >/dev/null 2>&1 || :`,
    `echo "@@KHA-VIPHOLD $kha_back"`,
  ].join('\n');
}
