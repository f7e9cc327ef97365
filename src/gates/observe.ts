// Pure side of the gates: the one command a gate runs on a host, and what its output means.
import { FactsParseError, interfacesWith, parseAddrs } from '../facts.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec } from '../types.js';

const OBSERVE_MARK = '@@KHA-OBSERVE';
const VRRP_MARK = '@@KHA-VRRP';
const VRRP_LOG_MARK = '@@KHA-VRRP-LOG';
const SERVE_MARK = '@@KHA-SERVE';
const STATS_MARK = '@@KHA-STATS';
const KUBECTL_MARK = '@@KHA-KUBECTL';
const RC_MARK = '@@KHA-RC=';

/** Where the VIP is on one host, and (optionally) what kubectl through the VIP said there. */
export interface HostObservation {
  host: string;
  /** Interfaces holding the VIP, from `ip -o addr`. */
  vipOn: string[];
  kubectl?: KubectlResult;
  /** The load-balancer path on this master, when the gate asked for it. */
  health?: HealthObservation;
}

/** Where to ask a master whether its own load-balancer path works. */
export interface HealthProbe {
  /** The master's own address (its haproxy listens there on vip_port). */
  address: string;
  vipPort: number;
  /** haproxy's monitor frontend on 127.0.0.1 (stats as CSV at /stats;csv). */
  monitorPort: number;
}

export interface BackendView {
  name: string;
  /** haproxy's status: UP, DOWN, MAINT, NOLB, … */
  status: string;
  /** Last check result: L4OK, L4CON, L7OK, L7STS, L7TOUT, … */
  checkStatus: string;
}

export interface HealthObservation {
  /** systemd ActiveState of keepalived.service. */
  keepalivedActive: string;
  /** Last VRRP state keepalived logged in this run of the unit ('' when none was logged yet). */
  vrrpState: '' | 'MASTER' | 'BACKUP' | 'FAULT';
  /** keepalived's recent state/track lines: the reason for a FAULT. */
  vrrpLog: string[];
  /** HTTP status of https://ADDRESS:vip_port/readyz through this master's own haproxy ('000': no answer, '': no curl); any status is an answer. */
  serveCode: string;
  /** haproxy's view of every apiserver backend; undefined when its monitor did not answer. */
  backends?: BackendView[];
}

export interface KubectlResult {
  ok: boolean;
  exitCode: number;
  /** kubectl's output, trimmed to what matters. */
  output: string;
  serverVersion?: string;
}

export function vipUrl(spec: ClusterSpec): string {
  const host = spec.family === 6 ? `[${spec.vip}]` : spec.vip;
  return `https://${host}:${spec.vipPort}`;
}

/**
 * `ip -o addr show`; with `health`, keepalived's VRRP state, this master's own haproxy serving /readyz
 * and haproxy's view of every backend; then optionally `kubectl version` forced through https://VIP:vip_port.
 */
export function observeScript(spec: ClusterSpec, withKubectl: boolean, health?: HealthProbe): string {
  // The marker lets the parser skip whatever a chatty login shell printed first.
  const lines = [scriptTag('observe', withKubectl ? 'kubectl' : 'addr', ...(health ? ['health'] : [])), `echo ${OBSERVE_MARK}`, 'ip -o addr show'];
  const healthLines: string[] = [];
  if (health) {
    const own = `https://${health.address.includes(':') ? `[${health.address}]` : health.address}:${health.vipPort}/readyz`;
    healthLines.push(
      `echo ${VRRP_MARK}`,
      'systemctl show -p ActiveState -p InvocationID keepalived.service 2>/dev/null',
      `echo ${VRRP_LOG_MARK}`,
      // This run of the unit only (its invocation id; systemd < 232 has none: this boot's lines).
      "kha_inv=$(systemctl show -p InvocationID keepalived.service 2>/dev/null | sed -n 's/^InvocationID=//p')",
      'if [ -n "$kha_inv" ]; then journalctl _SYSTEMD_INVOCATION_ID="$kha_inv" -o cat --no-pager 2>/dev/null; else journalctl -u keepalived.service -b -o cat --no-pager 2>/dev/null; fi' +
        " | grep -E 'Entering [A-Z]+ STATE|[Ss]cript|[Tt]rack|[Qq]uorum|FAULT' | tail -n 12",
      `echo ${SERVE_MARK}`,
      `if command -v curl >/dev/null 2>&1; then curl -sk -o /dev/null -w '%{http_code}\n' -m 3 ${shellQuote(own)} 2>/dev/null || :; else echo; fi`,
      `echo ${STATS_MARK}`,
      `curl -s -m 2 ${shellQuote(`http://127.0.0.1:${health.monitorPort}/stats;csv`)} 2>/dev/null || :`,
    );
    // The health sections run in the background while kubectl waits on the VIP, and print after it.
    lines.push('kha_ht=$(mktemp 2>/dev/null) || kha_ht=/tmp/kha-deploy-observe.$$', `{\n${healthLines.join('\n')}\n} >"$kha_ht" 2>/dev/null </dev/null &`, 'kha_hp=$!');
  }
  if (withKubectl) {
    // kubeasz installs kubectl in /opt/kube/bin, which is not on sudo's secure_path.
    lines.push(
      `echo ${KUBECTL_MARK}`,
      'k=$(command -v kubectl || for p in /usr/local/bin/kubectl /opt/kube/bin/kubectl; do [ -x "$p" ] && echo "$p" && break; done)',
      `if [ -z "$k" ]; then echo 'kubectl: command not found on this host'; echo ${RC_MARK}127; else` +
        ` "$k" --kubeconfig ${shellQuote(spec.kubeconfig)} --server ${shellQuote(vipUrl(spec))} --request-timeout=5s version 2>&1; echo "${RC_MARK}$?"; fi`,
    );
  }
  if (health) lines.push('wait "$kha_hp" || :', 'cat "$kha_ht" 2>/dev/null; rm -f "$kha_ht"');
  return lines.join('\n');
}

/** Interfaces whose addresses include `vip`, from `ip -o addr` lines (the facts module's parser). */
export function interfacesHolding(ipOAddr: string, vip: string, host = 'host'): string[] {
  const lines = ipOAddr.split('\n').filter((l) => l.trim() !== '');
  return interfacesWith(parseAddrs(host, lines), vip);
}

/** Parse observeScript's output; throws FactsParseError (host + unexpected lines) on output it cannot read. */
export function parseObservation(host: string, output: string, vip: string): HostObservation {
  const at = findMarkLine(output, OBSERVE_MARK);
  if (at < 0) throw new FactsParseError(host, `no '${OBSERVE_MARK}' line in the output of the VIP check`, output.split('\n').filter((l) => l.trim()).slice(0, 5));
  const stdout = output.slice(at + OBSERVE_MARK.length + 1);
  const idx = stdout.indexOf(KUBECTL_MARK);
  const vrrpAt = findMarkLine(stdout, VRRP_MARK);
  const addrEnd = [vrrpAt, idx].filter((i) => i >= 0);
  const addrPart = addrEnd.length ? stdout.slice(0, Math.min(...addrEnd)) : stdout;
  const obs: HostObservation = { host, vipOn: interfacesHolding(addrPart, vip, host) };
  if (vrrpAt >= 0) obs.health = parseHealth(stdout.slice(vrrpAt, idx > vrrpAt ? idx : undefined));
  if (idx !== -1) {
    const rest = stdout.slice(idx + KUBECTL_MARK.length, vrrpAt > idx ? vrrpAt : undefined);
    const rcAt = rest.lastIndexOf(RC_MARK);
    const output = (rcAt === -1 ? rest : rest.slice(0, rcAt)).trim();
    const exitCode = rcAt === -1 ? -1 : Number.parseInt(rest.slice(rcAt + RC_MARK.length), 10);
    const sv = /Server Version:\s*(?:version\.Info\{[^}]*GitVersion:"([^"]+)"|(\S+))/.exec(output);
    const serverVersion = sv ? (sv[1] ?? sv[2]) : undefined;
    obs.kubectl = {
      ok: exitCode === 0 && serverVersion !== undefined,
      exitCode,
      output,
      ...(serverVersion ? { serverVersion } : {}),
    };
  }
  return obs;
}

/** The health sections of an observation (pure). */
function parseHealth(text: string): HealthObservation {
  const section = (mark: string): string[] => {
    const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
    const start = lines.indexOf(mark);
    if (start < 0) return [];
    const end = lines.findIndex((l, i) => i > start && /^@@KHA-[A-Z-]+$/.test(l));
    return lines.slice(start + 1, end < 0 ? undefined : end).filter((l) => l.trim() !== '');
  };
  const props = new Map(section(VRRP_MARK).flatMap((l) => (/^(\w+)=(.*)$/.exec(l) ? [[l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as [string, string]] : [])));
  const vrrpLog = section(VRRP_LOG_MARK);
  const states = vrrpLog.flatMap((l) => /Entering (MASTER|BACKUP|FAULT) STATE/.exec(l)?.[1] ?? []);
  const serve = section(SERVE_MARK)[0] ?? '';
  const csv = section(STATS_MARK);
  const health: HealthObservation = {
    keepalivedActive: props.get('ActiveState') ?? '',
    vrrpState: (states[states.length - 1] ?? '') as HealthObservation['vrrpState'],
    vrrpLog,
    serveCode: /^\d{3}$/.test(serve.trim()) ? serve.trim() : serve.trim() === '' ? '' : '000',
  };
  const backends = parseStatsCsv(csv);
  if (backends) health.backends = backends;
  return health;
}

/** Servers of the apiserver proxy from haproxy's `show stat` CSV (header `# pxname,svname,…`); undefined without a header. */
export function parseStatsCsv(lines: string[], proxy = 'kube-master'): BackendView[] | undefined {
  const header = lines.find((l) => l.startsWith('# pxname,'));
  if (!header) return undefined;
  const cols = header.slice(2).split(',');
  const col = (name: string) => cols.indexOf(name);
  const [px, sv, st, cs] = [col('pxname'), col('svname'), col('status'), col('check_status')];
  return lines
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.split(','))
    .filter((f) => f[px] === proxy && f[sv] !== 'FRONTEND' && f[sv] !== 'BACKEND')
    .map((f) => ({ name: f[sv] ?? '', status: f[st] ?? '', checkStatus: (f[cs] ?? '').replace(/^\* ?/, '') }));
}

export interface HealthProblem {
  host: string;
  message: string;
  /** What the host showed (journal lines, haproxy's view). */
  seen?: string;
}

/**
 * The load-balancer path on `hosts` (pure): keepalived running and not in FAULT, MASTER on the holder and
 * BACKUP elsewhere, each master's own haproxy answering /readyz with 200, every backend UP in its view.
 */
export function judgeHealth(observations: readonly HostObservation[], holder: string, hosts: readonly string[], vipPort: number): HealthProblem[] {
  const problems: HealthProblem[] = [];
  for (const o of observations) {
    if (!hosts.includes(o.host) || !o.health) continue;
    const h = o.health;
    const log = h.vrrpLog.join('\n');
    if (h.keepalivedActive !== 'active') {
      problems.push({ host: o.host, message: `keepalived is not running on ${o.host} (${h.keepalivedActive || 'unknown'}): it cannot take the VIP over`, seen: log });
    } else if (h.vrrpState === 'FAULT') {
      const why = h.vrrpLog.filter((l) => !/Entering [A-Z]+ STATE/.test(l)).slice(-3).join('; ');
      problems.push({ host: o.host, message: `keepalived on ${o.host} is in FAULT state${why ? ` (${why})` : ''}: it cannot take the VIP over`, seen: log });
    } else if (o.host === holder && h.vrrpState !== 'MASTER') {
      problems.push({ host: o.host, message: `${o.host} holds the VIP but keepalived there says ${h.vrrpState || 'nothing yet'}, not MASTER`, seen: log });
    } else if (o.host !== holder && h.vrrpState === 'MASTER') {
      problems.push({ host: o.host, message: `keepalived on ${o.host} says MASTER but ${holder || 'no master'} holds the VIP`, seen: log });
    } else if (o.host !== holder && h.vrrpState !== 'BACKUP') {
      problems.push({ host: o.host, message: `keepalived on ${o.host} has not reported BACKUP yet (${h.vrrpState || 'no state logged'})`, seen: log });
    }
    // Any HTTP answer proves haproxy forwards to an apiserver (401/403 where anonymous requests are not
    // allowed, e.g. with haproxy_health_check=tcp); a frozen or unbound haproxy gives none.
    if (h.serveCode === '' || h.serveCode === '000') {
      const what = h.serveCode === '' ? 'curl is missing there' : 'nothing answered';
      problems.push({ host: o.host, message: `${o.host}'s own haproxy does not serve: GET /readyz on its own address, port ${vipPort}: ${what}` });
    }
    if (!h.backends) {
      problems.push({ host: o.host, message: `haproxy's monitor on ${o.host} (127.0.0.1) did not answer: cannot read its view of the apiservers` });
    } else {
      const down = h.backends.filter((b) => b.status !== 'UP');
      if (down.length > 0) {
        problems.push({
          host: o.host,
          message: `haproxy on ${o.host} sees ${down.map((b) => `${b.name} ${b.status} (${b.checkStatus || 'no check yet'})`).join(', ')}`,
          seen: h.backends.map((b) => `${b.name} ${b.status} ${b.checkStatus}`).join('\n'),
        });
      }
    }
  }
  return problems;
}

/** Offset of the line that is exactly `mark` (CR tolerated), or -1. */
function findMarkLine(text: string, mark: string): number {
  const m = new RegExp(`(^|\n)${mark}\r?(\n|$)`).exec(text);
  return m ? m.index + m[1]!.length : -1;
}

/** Hosts that hold the VIP right now. */
export function holders(observations: readonly HostObservation[]): string[] {
  return observations.filter((o) => o.vipOn.length > 0).map((o) => o.host);
}

export type PlacementVerdict =
  | { ok: true; holder: string }
  | { ok: false; kind: 'nobody' | 'wrong-host' | 'split-brain' | 'wrong-interface'; holders: string[]; message: string };

/**
 * The VIP must be on `expected` (on `iface` when given) and on no other host. When `expected` is
 * undefined (the primary is outside --limit) any single holder among the others is wrong only if it is several.
 */
export function judgePlacement(
  observations: readonly HostObservation[],
  vip: string,
  expected: string | undefined,
  iface?: string,
  /** How messages name the expected holder (default: `the primary NAME`). */
  expectedLabel?: string,
): PlacementVerdict {
  const hs = holders(observations);
  if (hs.length > 1) {
    return {
      ok: false,
      kind: 'split-brain',
      holders: hs,
      message: `SPLIT BRAIN: the VIP ${vip} is on ${hs.length} hosts at once (${hs.join(', ')})`,
    };
  }
  if (expected === undefined) {
    return hs.length === 1 ? { ok: true, holder: hs[0]! } : { ok: true, holder: '' };
  }
  if (hs.length === 0) {
    return { ok: false, kind: 'nobody', holders: [], message: `the VIP ${vip} is on no master (expected on ${expected})` };
  }
  if (hs[0] !== expected) {
    return {
      ok: false,
      kind: 'wrong-host',
      holders: hs,
      message: `the VIP ${vip} is on ${hs[0]}, expected on ${expectedLabel ?? `the primary ${expected}`}`,
    };
  }
  const on = observations.find((o) => o.host === expected)!.vipOn;
  if (iface && !on.includes(iface)) {
    return {
      ok: false,
      kind: 'wrong-interface',
      holders: hs,
      message: `the VIP ${vip} is on ${expected} but on ${on.join(', ')}, not on ${iface}`,
    };
  }
  return { ok: true, holder: expected };
}

/** What an operator should do about a failed `kubectl version` through the VIP. */
export function diagnoseKubectl(spec: ClusterSpec, result: KubectlResult): { message: string; hint: string } {
  const out = result.output;
  if (/x509|certificate is valid for|certificate is not valid for/i.test(out)) {
    return {
      message: `kubectl through ${vipUrl(spec)} failed the TLS check: the apiserver certificate does not list the VIP ${spec.vip} in its subjectAltNames`,
      hint:
        `add ${spec.vip} to the apiserver certificate's SANs and reissue it (kubeadm: apiServer.certSANs in the ClusterConfiguration, ` +
        `then 'kubeadm init phase certs apiserver'; kubeasz: MASTER_CERT_HOSTS in the cluster's config.yml, then 'ezctl setup CLUSTER 04'), ` +
        `restart kube-apiserver, and rerun kha-deploy`,
    };
  }
  if (/command not found/.test(out)) {
    return { message: 'kubectl is not installed on this master', hint: 'install kubectl on the masters (or put it on PATH) and rerun' };
  }
  if (/no such file or directory|stat .*kubeconfig|unable to read/i.test(out) && out.includes(spec.kubeconfig)) {
    return {
      message: `the kubeconfig ${spec.kubeconfig} is missing or unreadable on this master`,
      hint: 'set the kubeconfig variable in the inventory to an admin kubeconfig that exists on every master',
    };
  }
  if (/Unauthorized|Forbidden/i.test(out)) {
    return {
      message: `the apiserver answered through the VIP but refused the kubeconfig's credentials`,
      hint: `the VIP path works; check the credentials in ${spec.kubeconfig}`,
    };
  }
  return {
    message: `kubectl version through ${vipUrl(spec)} did not print a Server Version (exit ${result.exitCode})`,
    hint:
      `check that haproxy listens on :${spec.vipPort} ('ss -ltnp' on the VIP holder) and that the apiservers answer on :${spec.apiserverPort}; ` +
      `'journalctl -u haproxy' shows backend health`,
  };
}

/** Keepalived journal lines that explain a VIP that never arrived. */
export function diagnoseKeepalivedJournal(journal: string, vrid: number): { message: string; hint: string } | undefined {
  if (/bogus VRRP packet|ip address associated with VRID \d+ not present|VRRP_Instance.*received.*(lower|higher) prio.*with different|VRID.*mismatch/i.test(journal)) {
    return {
      message: `keepalived sees VRRP adverts for VRID ${vrid} that do not match ours: another VRRP router on this segment uses virtual_router_id ${vrid}, or the masters disagree (VIP, auth or VRID)`,
      hint: `pick a virtual_router_id that no other router on this subnet uses (set virtual_router_id=N in [masters:vars]) and rerun`,
    };
  }
  if (/Entering FAULT STATE|interface .* down|Netlink: .*error|Cannot find an IP address to use for interface/i.test(journal)) {
    return {
      message: `keepalived put the instance in FAULT state: the interface is down or has no usable address`,
      hint: `check the interface named in keepalived.conf ('ip -o addr'); set vip_interface to the interface that carries the masters' subnet`,
    };
  }
  if (/Unknown keyword|Configuration error|Unable to load/i.test(journal)) {
    return { message: 'keepalived reports a configuration problem', hint: 'see the journal lines below; fix the template or inventory and rerun' };
  }
  return undefined;
}
