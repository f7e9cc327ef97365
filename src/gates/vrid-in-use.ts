// Network preflight (issue 9): does a router that is not one of our masters already advertise our VRID?
// Before our keepalived runs a master's instance (first deploy, a new master, a new VRID), the lock +
// facts command starts a listener there for VRRP adverts (IP protocol 112 to 224.0.0.18) for a few
// advert intervals, in the background while the facts are read and the packages installed; its result
// is collected before the first configuration file is written. An advert with our VRID from an address that
// is none of the masters' → refuse before any host is changed, naming its source and its VIPs, and
// suggest a VRID nobody advertised. A master whose keepalived already runs our VRID skips the listen:
// a no-op rerun costs nothing. The listener is python3 (EL: platform-python), else perl (Debian's
// perl-base is essential); a host with neither is a warning. IPv4 only (no IPv6 lab to prove VRRPv3 on).
import { isIPv4 } from 'node:net';
import { HostStepError, ManyErrors } from '../errors.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { InterfaceFacts, RunEvent } from '../types.js';

const MARK = '@@KHA-VRRP';

/** How long a master listens: three adverts at the interval we advertise at, at least 2.5 s. */
export function listenSeconds(advertInt: number): number {
  return Math.max(2.5, 3 * advertInt + 0.2);
}

// Joins 224.0.0.18 on every IPv4 address given, prints one line per (source, VRID) heard:
// `@@KHA-VRRP adv SRC VRID PRIO VERSION VIP,VIP` (the VIPs from the advert's address list).
export const LISTENER_PY = `import socket, struct, sys, time
dur = float(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
for ip in sys.argv[2:]:
    try: s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton("224.0.0.18") + socket.inet_aton(ip))
    except OSError: pass
seen = {}
end = time.time() + dur
while True:
    left = end - time.time()
    if left <= 0: break
    s.settimeout(left)
    try: b, a = s.recvfrom(4096)
    except socket.timeout: break
    h = (b[0] & 15) * 4
    v = b[h:]
    if len(v) < 8 or v[0] & 15 != 1: continue
    n = v[3]
    ips = [socket.inet_ntoa(v[8 + 4 * i:12 + 4 * i]) for i in range(n) if len(v) >= 12 + 4 * i]
    seen[(a[0], v[1])] = "%s %d %d %d %s" % (a[0], v[1], v[2], v[0] >> 4, ",".join(ips) or "-")
for line in seen.values(): print("${MARK} adv " + line)
print("${MARK} listened")`;

export const LISTENER_PERL = `use Socket qw(PF_INET SOCK_RAW IPPROTO_IP IP_ADD_MEMBERSHIP inet_aton inet_ntoa pack_ip_mreq);
my ($dur, @ips) = @ARGV;
socket(my $s, PF_INET, SOCK_RAW, 112) or die "socket: $!\\n";
setsockopt($s, IPPROTO_IP, IP_ADD_MEMBERSHIP, pack_ip_mreq(inet_aton("224.0.0.18"), inet_aton($_))) for @ips;
my %seen; my $end = time + int($dur + 0.999);
while ((my $left = $end - time) > 0) {
  my $rin = ''; vec($rin, fileno($s), 1) = 1;
  last unless select(my $rout = $rin, undef, undef, $left);
  my $a = recv($s, my $b, 4096, 0); next unless defined $a;
  my $h = (ord(substr($b, 0, 1)) & 15) * 4; my $v = substr($b, $h);
  next if length($v) < 8 || (ord(substr($v, 0, 1)) & 15) != 1;
  my ($vt, $vrid, $prio, $n) = unpack('C4', $v);
  my @vips = map { length($v) >= 12 + 4 * $_ ? inet_ntoa(substr($v, 8 + 4 * $_, 4)) : () } 0 .. $n - 1;
  my $src = inet_ntoa(substr($b, 12, 4));
  $seen{"$src $vrid"} = join(' ', $src, $vrid, $prio, $vt >> 4, join(',', @vips) || '-');
}
print '${MARK} adv ', $_, "\\n" for values %seen;
print '${MARK} listened', "\\n";`;

/**
 * POSIX sh, returns at once: `@@KHA-VRRP skip` where keepalived already runs a config with our VRID,
 * else starts the listener in the background, writing to a temp file, and prints `@@KHA-VRRP started
 * FILE` (vridCollectScript reads it once the packages are installed: the listen costs a first deploy
 * no time of its own); `@@KHA-VRRP unable WHY` when it cannot listen.
 */
export function vridListenScript(o: { vrid: number; advertInt: number; keepalivedConf: string }): string {
  const secs = String(listenSeconds(o.advertInt));
  return [
    scriptTag('preflight', 'vrid-in-use', String(o.vrid)),
    '(',
    `if systemctl is-active --quiet keepalived.service 2>/dev/null && grep -Eq ${shellQuote(`^[[:space:]]*virtual_router_id[[:space:]]+${o.vrid}([[:space:]]|$)`)} ${shellQuote(o.keepalivedConf)} 2>/dev/null; then echo '${MARK} skip'`,
    `elif ! kha_vl=$(mktemp /tmp/kha-deploy-vrrp.XXXXXX 2>/dev/null); then echo '${MARK} unable mktemp failed in /tmp'`,
    'else',
    '  (',
    // Every IPv4 address but loopback: the adverts arrive on whichever interface carries the VIP's subnet.
    `  kha_ips=$(ip -o -4 addr show 2>/dev/null | sed -n 's/^[0-9]*: [^ ]* *inet \\([0-9.]*\\)\\/.*/\\1/p' | grep -v '^127\\.')`,
    '  kha_py=',
    '  if command -v python3 >/dev/null 2>&1; then kha_py=python3; elif [ -x /usr/libexec/platform-python ]; then kha_py=/usr/libexec/platform-python; fi',
    `  if [ -n "$kha_py" ]; then "$kha_py" -c ${shellQuote(LISTENER_PY)} ${secs} $kha_ips 2>&1 | sed 's/^/${MARK} /; s/^${MARK} ${MARK}/${MARK}/'`,
    `  elif command -v perl >/dev/null 2>&1; then perl -e ${shellQuote(LISTENER_PERL)} ${secs} $kha_ips 2>&1 | sed 's/^/${MARK} /; s/^${MARK} ${MARK}/${MARK}/'`,
    `  else echo '${MARK} unable neither python3 nor perl is installed'`,
    '  fi',
    `  echo '${MARK} done'`,
    // A run that ends before collecting (a refusal, a failed install) leaves no file behind for long.
    '  sleep 120; rm -f "$kha_vl"',
    // fd 9 is the run lock (src/runner/lock.ts): the listener outlives the lock command, it must not keep the lock.
    '  ) >"$kha_vl" 2>&1 </dev/null 9>&- &',
    `  echo "${MARK} started $kha_vl"`,
    'fi',
    ')',
  ].join('\n');
}

const FILE_RE = /^\/tmp\/kha-deploy-vrrp\.[A-Za-z0-9]+$/;

/** The listener's file where vridListenScript started one (validated: it goes back into a shell command). */
export function startedListen(output: string): string | undefined {
  const m = new RegExp(`^${MARK} started (\\S+)\\s*$`, 'm').exec(output);
  return m && FILE_RE.test(m[1]!) ? m[1] : undefined;
}

/** Waits (at most the listen plus 3 s) until the listener is done, prints what it heard, removes its file. */
export function vridCollectScript(file: string, advertInt: number): string {
  if (!FILE_RE.test(file)) throw new Error(`not a listener file: ${file}`);
  const tenths = Math.ceil((listenSeconds(advertInt) + 3) * 10);
  return [
    scriptTag('preflight', 'vrid-collect', file),
    'kha_i=0',
    `while ! grep -q '^${MARK} done' ${file} 2>/dev/null && [ "$kha_i" -lt ${tenths} ]; do sleep 0.1; kha_i=$((kha_i + 1)); done`,
    `cat ${file} 2>/dev/null; rm -f ${file}`,
  ].join('\n');
}

export interface Advert {
  source: string;
  vrid: number;
  priority: number;
  version: number;
  vips: string[];
}

export type ListenAnswer = { kind: 'skipped' } | { kind: 'started'; file: string } | { kind: 'heard'; adverts: Advert[] } | { kind: 'unable'; why: string };

/** What one master's listener printed (undefined: no listener output at all, e.g. an IPv6 VIP). */
export function parseVridListen(output: string): ListenAnswer | undefined {
  const lines = output
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l) => l.startsWith(`${MARK} `))
    .map((l) => l.slice(MARK.length + 1));
  if (lines.length === 0) return undefined;
  if (lines.includes('skip')) return { kind: 'skipped' };
  const file = startedListen(output);
  if (file !== undefined && !lines.includes('listened')) return { kind: 'started', file };
  if (!lines.includes('listened')) {
    const unable = lines.find((l) => l.startsWith('unable '));
    return { kind: 'unable', why: unable ? unable.slice('unable '.length) : lines.join('; ').slice(0, 300) };
  }
  const adverts = lines.flatMap((l) => {
    const m = /^adv (\S+) (\d+) (\d+) (\d+) (\S+)$/.exec(l);
    if (!m || !isIPv4(m[1]!)) return [];
    return [{ source: m[1]!, vrid: Number(m[2]), priority: Number(m[3]), version: Number(m[4]), vips: m[5] === '-' ? [] : m[5]!.split(',') }];
  });
  return { kind: 'heard', adverts };
}

/** The lowest VRID from ours upwards (wrapping at 255) that no advert used (pure). */
export function freeVrid(ours: number, adverts: readonly Advert[]): number | undefined {
  const used = new Set(adverts.map((a) => a.vrid));
  for (let i = 1; i < 255; i++) {
    const v = ((ours - 1 + i) % 255) + 1;
    if (!used.has(v)) return v;
  }
  return undefined;
}

/** Adverts on our VRID from addresses that are none of the masters' (pure). */
export function foreignAdverts(vrid: number, answers: readonly { host: string; answer: ListenAnswer | undefined }[], masterAddrs: ReadonlySet<string>): (Advert & { heardOn: string[] })[] {
  const bySource = new Map<string, Advert & { heardOn: string[] }>();
  for (const a of answers) {
    if (a.answer?.kind !== 'heard') continue;
    for (const adv of a.answer.adverts) {
      if (adv.vrid !== vrid || masterAddrs.has(adv.source)) continue;
      const known = bySource.get(adv.source);
      if (known) known.heardOn.push(a.host);
      else bySource.set(adv.source, { ...adv, heardOn: [a.host] });
    }
  }
  return [...bySource.values()];
}

/** Every address on the masters' interfaces (the sources of our own adverts). */
export function masterAddresses(hosts: readonly { interfaces: readonly InterfaceFacts[] }[]): Set<string> {
  return new Set(hosts.flatMap((h) => h.interfaces.flatMap((i) => i.addrs.map((c) => c.split('/')[0]!))));
}

/**
 * Refuse our VRID when a router that is not a master advertises it. With vrrp_unicast our keepalived
 * only hears its peers, so a foreign multicast router on the VRID is a warning, not a refusal.
 */
export function preflightVrid(opts: {
  vrid: number;
  vip: string;
  unicast: boolean;
  answers: readonly { host: string; output: string }[];
  masterAddrs: ReadonlySet<string>;
  emit: (e: RunEvent) => void;
  /** Masters where this run installed the packages while the listen ran (nothing configured or started). */
  installedOn?: readonly string[];
}): void {
  const parsed = opts.answers.map((a) => ({ host: a.host, answer: parseVridListen(a.output) }));
  for (const p of parsed) {
    if (p.answer?.kind === 'unable') opts.emit({ type: 'warning', host: p.host, message: `could not listen for VRRP adverts on virtual_router_id ${opts.vrid} (${p.answer.why}): a foreign router on it would only show after the VIP failed to settle` });
  }
  const foreign = foreignAdverts(opts.vrid, parsed, opts.masterAddrs);
  if (foreign.length === 0) return;
  const all = parsed.flatMap((p) => (p.answer?.kind === 'heard' ? p.answer.adverts : []));
  const free = freeVrid(opts.vrid, all);
  const describe = (f: Advert & { heardOn: string[] }): string => `${f.source} (priority ${f.priority}, VRRPv${f.version}, VIPs ${f.vips.join(', ') || 'none'}; heard on ${f.heardOn.join(', ')})`;
  const who = foreign.map(describe).join('; ');
  if (opts.unicast) {
    opts.emit({ type: 'warning', host: foreign[0]!.heardOn[0]!, message: `a router that is not a master advertises virtual_router_id ${opts.vrid} by multicast: ${who}. With vrrp_unicast our masters only hear each other, so it does not take part in our election` });
    return;
  }
  const errors = foreign.map(
    (f) =>
      new HostStepError(f.heardOn[0]!, 'preflight', `virtual_router_id ${opts.vrid} is already in use on this network: ${describe(f)}, and ${f.source} is none of the masters`, {
        seen: `VRRP advert from ${f.source}: virtual_router_id ${f.vrid}, priority ${f.priority}, VIPs ${f.vips.join(', ') || 'none'}`,
        hint: `${free === undefined ? 'choose a virtual_router_id nobody on this network uses' : `set virtual_router_id=${free} (no advert heard on it)`} in the inventory's [all:vars], or stop the router at ${f.source}: two VRRP routers on one VRID fight over the VIP ${opts.vip}`,
      }),
  );
  const changed = opts.installedOn && opts.installedOn.length > 0 ? `no configuration was written (keepalived and haproxy were installed on ${opts.installedOn.join(', ')}, not configured or started)` : 'no host was changed';
  throw new ManyErrors(errors, `virtual_router_id ${opts.vrid} is in use by a router that is not a master: ${changed}`);
}
