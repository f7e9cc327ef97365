// Facts: ONE remote command that prints a host's state as machine-readable lines, and its pure parser.
// The script only reads; the runner wraps it (run lock), so it never exits, never reads stdin and
// survives `set -eu` in a wrapper.
import { normalizeIP } from './inventory/checks.js';
import type { Playbook } from './playbook.js';
import { scriptTag, shellQuote } from './shell.js';
import type { ClusterSpec, HostFacts, InterfaceFacts, KeepalivedConfFacts, ManagedUnit, PackageManager, UnitFacts } from './types.js';

export type { KeepalivedConfFacts } from './types.js';

/** Where apply records the sha256 of the config a unit last loaded through kha-deploy (see src/apply.ts). */
export const STATE_DIR = '/var/lib/kha-deploy';
export const FACTS_BEGIN = 'kha-facts 1';
export const FACTS_END = 'kha-facts end';
/** The curl keepalived's check script runs (playbooks/templates/keepalived.conf.tmpl); bin.curl reports this path only. */
export const CURL_PATH = '/usr/bin/curl';

/** The host printed something the facts parser does not understand: a report naming the host and the lines, never a stack trace. */
export class FactsParseError extends Error {
  constructor(
    readonly host: string,
    readonly problem: string,
    /** The unexpected lines, as the host printed them. */
    readonly lines: string[],
  ) {
    super(`facts from ${host}: ${problem}${lines.length ? `: ${lines.map((l) => JSON.stringify(l)).join(', ')}` : ''}`);
    this.name = 'FactsParseError';
  }
}

const UNITS: ManagedUnit[] = ['keepalived', 'haproxy'];
const TMPFILES_DIRS = ['/etc/tmpfiles.d', '/run/tmpfiles.d', '/usr/lib/tmpfiles.d'];

export function appliedStatePath(unit: ManagedUnit): string {
  return `${STATE_DIR}/${unit}.applied`;
}

/** Paths whose sha256 the facts report: every file the playbook manages. */
export function managedPaths(playbook: Playbook): string[] {
  return [playbook.files.haproxy.path, playbook.files.keepalived.path, playbook.files.tmpfiles.path];
}

function regexEscape(s: string): string {
  return s.replace(/[.[\]\\*+?^$(){}|]/g, '\\$&');
}

/** A `section` of raw command output between markers; the output is trimmed of trailing newlines. */
function section(name: string, command: string): string[] {
  return [`printf '%s\\n' '@begin ${name}'`, `kha_o=$(${command} 2>/dev/null) || :`, `[ -z "$kha_o" ] || printf '%s\\n' "$kha_o"`, `printf '%s\\n' '@end ${name}'`];
}

/**
 * The POSIX sh script that gathers a host's facts. Prints `kha-facts 1`, then `key=value` lines,
 * `file SHA256|-|? PATH` lines and `@begin NAME` … `@end NAME` sections, then `kha-facts end`.
 * Every command may fail (no systemd, no ip): the script still prints everything else.
 */
export function factsScript(spec: ClusterSpec, playbook: Playbook): string {
  const q = shellQuote;
  const runDir = playbook.runDir;
  // A tmpfiles.d line creating the directory: type d/D/v/q/Q (with modifiers), then the path (/var/run is an alias).
  const tmpfilesRe = `^[[:space:]]*[dDvqQ][^[:space:]]*[[:space:]]+${runDir.startsWith('/run/') ? '(/var)?' : ''}${regexEscape(runDir)}/?([[:space:]]|$)`;
  const lines: string[] = [
    scriptTag('facts'),
    '{',
    `printf '%s\\n' ${q(FACTS_BEGIN)}`,
    // os-release is shell syntax, but sourcing it would run code: read the two lines as text.
    'for kha_f in /etc/os-release /usr/lib/os-release; do',
    `  if [ -r "$kha_f" ]; then sed -n -e 's/^ID=/os.id=/p' -e 's/^ID_LIKE=/os.id_like=/p' "$kha_f"; break; fi`,
    'done',
    // dpkg --audit names packages an interrupted install left unconfigured (the packages step repairs them).
    `if command -v dpkg >/dev/null 2>&1; then kha_a=$(dpkg --audit 2>/dev/null | head -n 1 | tr -cd '[:print:]'); printf 'pkg.interrupted=%s\\n' "\${kha_a:+yes}"; fi`,
    'for kha_c in apt-get dnf yum; do',
    `  printf 'cmd.%s=%s\\n' "$kha_c" "$(command -v "$kha_c" 2>/dev/null || :)"`,
    'done',
    // root's PATH may lack /usr/sbin (e.g. plain `su`): look there too.
    'kha_bk=; kha_bh=',
    'for kha_c in keepalived haproxy; do',
    '  kha_p=$(command -v "$kha_c" 2>/dev/null) || kha_p=',
    '  if [ -z "$kha_p" ]; then for kha_d in /usr/sbin /sbin /usr/local/sbin; do if [ -x "$kha_d/$kha_c" ]; then kha_p="$kha_d/$kha_c"; break; fi; done; fi',
    `  printf 'bin.%s=%s\\n' "$kha_c" "$kha_p"`,
    '  if [ "$kha_c" = keepalived ]; then kha_bk=$kha_p; else kha_bh=$kha_p; fi',
    'done',
    // keepalived's check runs this very path (see CURL_PATH): another curl elsewhere does not count.
    `if [ -x ${q(CURL_PATH)} ]; then printf 'bin.curl=%s\\n' ${q(CURL_PATH)}; else printf '%s\\n' 'bin.curl='; fi`,
    // "Keepalived v2.2.7 (01/16,2022)" (stderr on some versions); an epoch ("v1:1.3.9") is skipped.
    `kha_v=; if [ -n "$kha_bk" ]; then kha_v=$("$kha_bk" --version 2>&1 | sed -n 's/^Keepalived v\\([0-9]*:\\)\\{0,1\\}\\([0-9][0-9]*\\.[0-9][0-9]*\\(\\.[0-9][0-9]*\\)\\{0,1\\}\\).*/\\2/p' | head -n 1) || kha_v=; fi`,
    `printf 'keepalived.version=%s\\n' "$kha_v"`,
    // "HAProxy version 2.6.12-1+deb12u1 2023/12/16 - https://haproxy.org/" ("HA-Proxy" before 1.9);
    // the exporter shows as +PROMEX in the feature list (2.4+) or in "Available services" (2.0+).
    'kha_v=; kha_x=',
    'if [ -n "$kha_bh" ]; then',
    '  kha_o=$("$kha_bh" -vv 2>&1) || :',
    `  kha_v=$(printf '%s\\n' "$kha_o" | sed -n 's/^HA-\\{0,1\\}Proxy version \\([0-9][0-9]*\\.[0-9][0-9]*\\(\\.[0-9][0-9]*\\)\\{0,1\\}\\).*/\\1/p' | head -n 1) || kha_v=`,
    `  if [ -n "$kha_o" ]; then if printf '%s\\n' "$kha_o" | grep -qF -e +PROMEX -e prometheus-exporter; then kha_x=yes; else kha_x=no; fi; fi`,
    'fi',
    `printf 'haproxy.version=%s\\nhaproxy.promex=%s\\n' "$kha_v" "$kha_x"`,
    // vrrp_track_process needs the kernel's process events, which it sends only to the initial PID
    // and user namespaces (fixed inode numbers 0xEFFFFFFC and 0xEFFFFFFD): not into a container.
    'kha_np=$(readlink /proc/self/ns/pid 2>/dev/null) || kha_np=',
    'kha_nu=$(readlink /proc/self/ns/user 2>/dev/null) || kha_nu=',
    'case $kha_np in',
    "  '') kha_e= ;;",
    "  'pid:[4026531836]') case $kha_nu in '' | 'user:[4026531837]') kha_e=yes ;; *) kha_e=no ;; esac ;;",
    '  *) kha_e=no ;;',
    'esac',
    'kha_f=$(uname -r 2>/dev/null) || kha_f=',
    `kha_f=/boot/config-$kha_f; if [ "$kha_e" = yes ] && [ -r "$kha_f" ] && ! grep -q '^CONFIG_PROC_EVENTS=y' "$kha_f"; then kha_e=no; fi`,
    `printf 'proc.events=%s\\n' "$kha_e"`,
    // SELinux: getenforce where installed (EL), else the kernel's own switch; neither: no SELinux.
    'kha_s=',
    "if command -v getenforce >/dev/null 2>&1; then kha_s=$(getenforce 2>/dev/null | tr 'A-Z' 'a-z') || kha_s=",
    "elif [ -r /sys/fs/selinux/enforce ]; then case $(cat /sys/fs/selinux/enforce 2>/dev/null) in 1) kha_s=enforcing ;; 0) kha_s=permissive ;; esac",
    'fi',
    "case $kha_s in enforcing | permissive | disabled) ;; *) kha_s= ;; esac",
    `printf 'selinux=%s\\n' "$kha_s"`,
    // firewalld running; systemctl prints nothing without systemd (unknown).
    'kha_s=$(systemctl is-active firewalld.service 2>/dev/null) || :',
    "case $kha_s in active | reloading) kha_s=yes ;; '') ;; *) kha_s=no ;; esac",
    `printf 'firewalld=%s\\n' "$kha_s"`,
    // Whether the config on disk already has the serving check: keepalived < 2.2.5 must not get it by reload.
    `if [ -f ${q(playbook.files.keepalived.path)} ]; then if grep -q chk_haproxy_serving ${q(playbook.files.keepalived.path)} 2>/dev/null; then echo keepalived.serving_check=yes; else echo keepalived.serving_check=no; fi; fi`,
    // The instance keepalived.conf defines: what a reload keeps or recreates (priority, VRID, interface, unicast, VIP).
    `if [ -f ${q(playbook.files.keepalived.path)} ]; then sed -n ${KEEPALIVED_CONF_SED.map((e) => `-e ${q(e)}`).join(' ')} ${q(playbook.files.keepalived.path)} 2>/dev/null | head -n 8 || :; fi`,
    `for kha_f in ${managedPaths(playbook).map(q).join(' ')}; do`,
    // `?`: the file exists but could not be hashed (the parser refuses to guess).
    `  if [ -f "$kha_f" ]; then kha_h=$(sha256sum < "$kha_f" 2>/dev/null) || kha_h=; kha_h=\${kha_h%% *}; [ -n "$kha_h" ] || kha_h='?'; else kha_h=-; fi`,
    `  printf 'file %s %s\\n' "$kha_h" "$kha_f"`,
    'done',
    ...UNITS.flatMap((u) => [
      `kha_a=; if [ -f ${q(appliedStatePath(u))} ]; then kha_a=$(head -n 1 ${q(appliedStatePath(u))} 2>/dev/null | tr -cd '0-9a-f') || kha_a=; fi`,
      `printf 'applied.${u}=%s\\n' "$kha_a"`,
    ]),
    `if [ -d ${q(runDir)} ]; then printf '%s\\n' rundir=yes; else printf '%s\\n' rundir=no; fi`,
    // A same-named file in an earlier directory masks later ones (tmpfiles.d(5)); /dev/null masks too.
    'kha_t=',
    `for kha_d in ${TMPFILES_DIRS.join(' ')}; do`,
    '  for kha_f in "$kha_d"/*.conf; do',
    '    [ -f "$kha_f" ] || continue',
    '    kha_b=${kha_f##*/}; kha_m=',
    `    for kha_e in ${TMPFILES_DIRS.join(' ')}; do [ "$kha_e" = "$kha_d" ] && break; [ -e "$kha_e/$kha_b" ] && kha_m=1; done`,
    `    if [ -z "$kha_m" ] && [ -z "$kha_t" ] && grep -Eq ${q(tmpfilesRe)} "$kha_f" 2>/dev/null; then kha_t=$kha_f; fi`,
    '  done',
    'done',
    `printf 'rundir.tmpfiles=%s\\n' "$kha_t"`,
    ...UNITS.flatMap((u) => section(`unit.${u}`, `systemctl show --no-pager -p LoadState -p ActiveState -p UnitFileState -p MainPID ${q(`${u}.service`)}`)),
    ...section('ip-addr', 'ip -o addr show'),
    ...section('ip-route', `ip -o route get ${q(spec.vip)}`),
    `printf '%s\\n' ${q(FACTS_END)}`,
    '} </dev/null',
  ];
  return lines.join('\n');
}

// One line per value, the first of each kind found in the file (ours has one instance); comments never match.
const KEEPALIVED_CONF_SED = [
  's/^[[:space:]]*priority[[:space:]][[:space:]]*\\([0-9][0-9]*\\)[[:space:]]*$/keepalived.conf.priority=\\1/p',
  's/^[[:space:]]*virtual_router_id[[:space:]][[:space:]]*\\([0-9][0-9]*\\)[[:space:]]*$/keepalived.conf.vrid=\\1/p',
  's/^[[:space:]]*interface[[:space:]][[:space:]]*\\([A-Za-z0-9_.:@-][A-Za-z0-9_.:@-]*\\)[[:space:]]*$/keepalived.conf.interface=\\1/p',
  's/^[[:space:]]*unicast_src_ip[[:space:]][[:space:]]*\\([0-9A-Fa-f.:][0-9A-Fa-f.:]*\\)[[:space:]]*$/keepalived.conf.unicast_src_ip=\\1/p',
  's/^[[:space:]]*\\([0-9A-Fa-f.:][0-9A-Fa-f.:]*\\)\\/[0-9][0-9]*[[:space:]][[:space:]]*dev[[:space:]].*/keepalived.conf.vip=\\1/p',
];
const KEEPALIVED_CONF_KEYS = ['keepalived.conf.priority', 'keepalived.conf.vrid', 'keepalived.conf.interface', 'keepalived.conf.unicast_src_ip', 'keepalived.conf.vip'];

const KEYS = new Set([
  'os.id',
  'os.id_like',
  'cmd.apt-get',
  'cmd.dnf',
  'cmd.yum',
  'bin.keepalived',
  'bin.haproxy',
  'bin.curl',
  'keepalived.version',
  'haproxy.version',
  'haproxy.promex',
  'proc.events',
  'applied.keepalived',
  'applied.haproxy',
  'rundir',
  'rundir.tmpfiles',
  'pkg.interrupted',
  'keepalived.serving_check',
  'selinux',
  'firewalld',
  ...KEEPALIVED_CONF_KEYS,
]);
/** Keys a host may leave out (the fact does not apply there, or an older script did not print it). */
const OPTIONAL_KEYS = new Set(['os.id', 'os.id_like', 'pkg.interrupted', 'keepalived.serving_check', 'selinux', 'firewalld', ...KEEPALIVED_CONF_KEYS]);
const SECTIONS = new Set(['unit.keepalived', 'unit.haproxy', 'ip-addr', 'ip-route']);
const SHA256 = /^[0-9a-f]{64}$/;

/** A version the script extracted ("2.2.7", "1.5.18", "2.9"); anything else is unknown. */
function version(v: string): string | null {
  return /^[0-9]{1,4}(\.[0-9]{1,4}){1,2}$/.test(v) ? v : null;
}

/** yes / no / '' (unknown). */
function tri(host: string, key: string, v: string): boolean | null {
  if (v === 'yes') return true;
  if (v === 'no') return false;
  if (v === '') return null;
  throw new FactsParseError(host, 'unexpected line', [`${key}=${v}`]);
}

/** os-release values may be quoted: ID="centos". */
function unquote(v: string): string {
  const m = /^"(.*)"$/.exec(v) ?? /^'(.*)'$/.exec(v);
  return m ? m[1]!.replace(/\\(.)/g, '$1') : v;
}

function osFamily(id: string, idLike: string): HostFacts['osFamily'] {
  const words = [id, ...idLike.split(/\s+/)].map((w) => w.toLowerCase()).filter(Boolean);
  for (const w of words) {
    if (w === 'debian' || w === 'ubuntu') return 'debian';
    if (['rhel', 'centos', 'fedora', 'rocky', 'almalinux', 'ol'].includes(w)) return 'rhel';
  }
  return 'unknown';
}

function pickPackageManager(family: HostFacts['osFamily'], has: (c: string) => boolean): PackageManager | null {
  // dnf before yum: on EL8+ yum is dnf's compatibility alias.
  const order: [string, PackageManager][] =
    family === 'rhel'
      ? [['dnf', 'dnf'], ['yum', 'yum'], ['apt-get', 'apt']]
      : [['apt-get', 'apt'], ['dnf', 'dnf'], ['yum', 'yum']];
  for (const [cmd, pm] of order) if (has(cmd)) return pm;
  return null;
}

function parseUnit(host: string, unit: ManagedUnit, lines: string[]): UnitFacts {
  const props = new Map<string, string>();
  for (const l of lines) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(l);
    if (!m) throw new FactsParseError(host, `unexpected line in systemctl show ${unit}.service output`, [l]);
    props.set(m[1]!, m[2]!);
  }
  // No output at all: systemctl is missing or systemd is not running; nothing is known.
  const pidText = props.get('MainPID') ?? '0';
  if (!/^\d+$/.test(pidText)) throw new FactsParseError(host, `${unit}.service MainPID is not a number`, [pidText]);
  const loaded = props.get('LoadState') !== 'not-found';
  return {
    active: loaded ? (props.get('ActiveState') ?? '') : '',
    enabled: loaded ? (props.get('UnitFileState') ?? '') : '',
    mainPid: Number(pidText),
  };
}

// `2: eth0    inet 10.0.0.11/24 brd … scope global eth0\       valid_lft …`; names may carry @ifN.
const ADDR_LINE = /^\d+:\s+([^\s@:]+)(?:@\S+)?:?\s+(inet6?)\s+(\S+)/;
const LINK_LINE = /^\d+:\s+([^\s@:]+)(?:@\S+)?:?\s+link\//;

export function parseAddrs(host: string, lines: string[]): InterfaceFacts[] {
  const byName = new Map<string, string[]>();
  for (const l of lines) {
    const m = ADDR_LINE.exec(l);
    if (m) {
      const [, name, , cidr] = m as unknown as [string, string, string, string];
      if (!/^[0-9A-Fa-f.:]+(\/\d{1,3})?$/.test(cidr)) throw new FactsParseError(host, `unexpected address in ip -o addr output`, [l]);
      if (!byName.has(name)) byName.set(name, []);
      byName.get(name)!.push(cidr);
      continue;
    }
    const link = LINK_LINE.exec(l);
    if (link) {
      if (!byName.has(link[1]!)) byName.set(link[1]!, []);
      continue;
    }
    throw new FactsParseError(host, `unexpected line in ip -o addr output`, [l]);
  }
  return [...byName].map(([name, addrs]) => ({ name, addrs }));
}

/** Names of the interfaces that carry `addr` (IPv6 compared in canonical form). */
export function interfacesWith(interfaces: readonly InterfaceFacts[], addr: string): string[] {
  const want = normalizeIP(addr);
  return interfaces.filter((i) => i.addrs.some((a) => normalizeIP(a.split('/')[0]!) === want)).map((i) => i.name);
}

/** The `dev X` of `ip -o route get VIP`, or null when there is no route. */
function routeDev(lines: string[]): string | null {
  for (const l of lines) {
    const m = /(?:^|\s)dev\s+([^\s@]+)/.exec(l);
    if (m) return m[1]!;
  }
  return null;
}

function keepalivedConf(kv: Map<string, string>): KeepalivedConfFacts {
  const num = (k: string, max: number): number | null => {
    const v = kv.get(k);
    return v !== undefined && /^\d{1,3}$/.test(v) && Number(v) <= max ? Number(v) : null;
  };
  return {
    priority: num('keepalived.conf.priority', 255),
    virtualRouterId: num('keepalived.conf.vrid', 255),
    interface: kv.get('keepalived.conf.interface') ?? null,
    unicastSrcIp: kv.get('keepalived.conf.unicast_src_ip') ?? null,
    vip: kv.get('keepalived.conf.vip') ?? null,
  };
}

/** Parse the output of factsScript. Pure; throws an Error quoting the first line it does not understand. */
export function parseFacts(host: string, stdout: string, vip: string): HostFacts {
  const all = stdout.split('\n').map((l) => l.replace(/\r$/, ''));
  // A chatty login shell (~/.bashrc echo lines, motd scripts) may print before and after: find the markers.
  const begin = all.indexOf(FACTS_BEGIN);
  if (begin < 0) {
    const shown = all.filter((l) => l.trim() !== '').slice(0, 5);
    throw new FactsParseError(host, shown.length === 0 ? 'the facts command printed nothing' : `no '${FACTS_BEGIN}' line in the facts output`, shown);
  }
  const end = all.indexOf(FACTS_END, begin + 1);
  if (end < 0) {
    const last = all.filter((l) => l.trim() !== '').slice(-1);
    throw new FactsParseError(host, `the output is truncated (no '${FACTS_END}' line)`, last);
  }
  const lines = all.slice(begin, end + 1);
  const kv = new Map<string, string>();
  const files: Record<string, string | null> = {};
  const sections = new Map<string, string[]>();
  let open: { name: string; lines: string[] } | undefined;
  for (const l of lines.slice(1, -1)) {
    if (open) {
      if (l === `@end ${open.name}`) {
        sections.set(open.name, open.lines);
        open = undefined;
      } else if (l.trim() !== '') {
        open.lines.push(l);
      }
      continue;
    }
    if (l === '') continue;
    const begin = /^@begin (\S+)$/.exec(l);
    if (begin) {
      if (!SECTIONS.has(begin[1]!)) throw new FactsParseError(host, `unknown section`, [l]);
      open = { name: begin[1]!, lines: [] };
      continue;
    }
    const file = /^file (\S+) (\/.*)$/.exec(l);
    if (file) {
      const [, hash, path] = file as unknown as [string, string, string];
      if (hash === '-') files[path] = null;
      else if (SHA256.test(hash)) files[path] = hash;
      else if (hash === '?') throw new FactsParseError(host, `${path} exists but could not be hashed (is sha256sum installed and the file readable?)`, []);
      else throw new FactsParseError(host, `unexpected line`, [l]);
      continue;
    }
    const m = /^([a-z][a-z0-9_.-]*)=(.*)$/.exec(l);
    if (!m || !KEYS.has(m[1]!)) throw new FactsParseError(host, `unexpected line`, [l]);
    if (m[1]!.startsWith('keepalived.conf.') && kv.has(m[1]!)) continue; // the first instance's value
    kv.set(m[1]!, m[2]!);
  }
  if (open) throw new FactsParseError(host, `section ${open.name} is not closed`, []);
  for (const k of KEYS) {
    if (!OPTIONAL_KEYS.has(k) && !kv.has(k)) throw new FactsParseError(host, `'${k}=' is missing from the output`, []);
  }
  for (const s of SECTIONS) if (!sections.has(s)) throw new FactsParseError(host, `section ${s} is missing from the output`, []);
  const rundir = kv.get('rundir');
  if (rundir !== 'yes' && rundir !== 'no') throw new FactsParseError(host, `unexpected line`, [`rundir=${rundir}`]);

  const osId = unquote(kv.get('os.id') ?? '');
  const family = osFamily(osId, unquote(kv.get('os.id_like') ?? ''));
  const interfaces = parseAddrs(host, sections.get('ip-addr')!);
  const vipOn = interfacesWith(interfaces, vip);
  // The route to a local VIP goes through `lo`: the interface holding it is the one keepalived uses.
  const dev = routeDev(sections.get('ip-route')!);
  const routeInterface = vipOn.find((n) => n !== 'lo') ?? (dev !== null && dev !== 'lo' ? dev : null);

  const selinux = kv.get('selinux');
  if (selinux !== undefined && !['enforcing', 'permissive', 'disabled', ''].includes(selinux)) throw new FactsParseError(host, 'unexpected line', [`selinux=${selinux}`]);
  const applied = (u: ManagedUnit): string | null => {
    const v = kv.get(`applied.${u}`)!;
    return SHA256.test(v) ? v : null;
  };
  return {
    host,
    osId,
    osFamily: family,
    pkgManager: pickPackageManager(family, (c) => (kv.get(`cmd.${c}`) ?? '') !== ''),
    installed: { keepalived: kv.get('bin.keepalived') !== '', haproxy: kv.get('bin.haproxy') !== '', curl: kv.get('bin.curl') !== '' },
    keepalivedVersion: version(kv.get('keepalived.version')!),
    keepalivedServingCheck: kv.has('keepalived.serving_check') ? kv.get('keepalived.serving_check') === 'yes' : null,
    haproxyVersion: version(kv.get('haproxy.version')!),
    haproxyPromex: tri(host, 'haproxy.promex', kv.get('haproxy.promex')!),
    procEvents: tri(host, 'proc.events', kv.get('proc.events')!),
    ...(selinux !== undefined ? { selinux: selinux === '' ? null : (selinux as 'enforcing' | 'permissive' | 'disabled') } : {}),
    ...(kv.has('firewalld') ? { firewalldRunning: tri(host, 'firewalld', kv.get('firewalld')!) } : {}),
    ...(KEEPALIVED_CONF_KEYS.some((k) => kv.has(k)) ? { keepalivedConf: keepalivedConf(kv) } : {}),
    pkgInterrupted: kv.get('pkg.interrupted') === 'yes',
    files,
    applied: { keepalived: applied('keepalived'), haproxy: applied('haproxy') },
    units: {
      keepalived: parseUnit(host, 'keepalived', sections.get('unit.keepalived')!),
      haproxy: parseUnit(host, 'haproxy', sections.get('unit.haproxy')!),
    },
    runDirExists: rundir === 'yes',
    runDirPersistent: kv.get('rundir.tmpfiles') !== '',
    routeInterface,
    interfaces,
    vipOn,
  };
}
