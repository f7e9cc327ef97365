// Pure side of the gates: the one command a gate runs on a host, and what its output means.
import { FactsParseError, interfacesWith, parseAddrs } from '../facts.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec } from '../types.js';

const OBSERVE_MARK = '@@KHA-OBSERVE';
const KUBECTL_MARK = '@@KHA-KUBECTL';
const RC_MARK = '@@KHA-RC=';

/** Where the VIP is on one host, and (optionally) what kubectl through the VIP said there. */
export interface HostObservation {
  host: string;
  /** Interfaces holding the VIP, from `ip -o addr`. */
  vipOn: string[];
  kubectl?: KubectlResult;
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

/** `ip -o addr show`, then optionally `kubectl version` forced through https://VIP:vip_port. */
export function observeScript(spec: ClusterSpec, withKubectl: boolean): string {
  // The marker lets the parser skip whatever a chatty login shell printed first.
  const lines = [scriptTag('observe', withKubectl ? 'kubectl' : 'addr'), `echo ${OBSERVE_MARK}`, 'ip -o addr show'];
  if (withKubectl) {
    // kubeasz installs kubectl in /opt/kube/bin, which is not on sudo's secure_path.
    lines.push(
      `echo ${KUBECTL_MARK}`,
      'k=$(command -v kubectl || for p in /usr/local/bin/kubectl /opt/kube/bin/kubectl; do [ -x "$p" ] && echo "$p" && break; done)',
      `if [ -z "$k" ]; then echo 'kubectl: command not found on this host'; echo ${RC_MARK}127; else` +
        ` "$k" --kubeconfig ${shellQuote(spec.kubeconfig)} --server ${shellQuote(vipUrl(spec))} --request-timeout=5s version 2>&1; echo "${RC_MARK}$?"; fi`,
    );
  }
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
  const addrPart = idx === -1 ? stdout : stdout.slice(0, idx);
  const obs: HostObservation = { host, vipOn: interfacesHolding(addrPart, vip, host) };
  if (idx !== -1) {
    const rest = stdout.slice(idx + KUBECTL_MARK.length);
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
      message: `the VIP ${vip} is on ${hs[0]}, expected on the primary ${expected}`,
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
