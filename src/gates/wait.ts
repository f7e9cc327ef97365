// I/O side of the gates: poll the hosts (one command each per attempt) until the VIP is where it
// should be and kubectl answers through it, or the deadline passes; then say why not.
import pRetry, { AbortError } from 'p-retry';
import { GateError, HostStepError } from '../errors.js';
import { journalTail } from '../journal.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec, InterfaceFacts, Remote, RunEvent } from '../types.js';
import { vipSubnetProblem } from './subnet.js';
import {
  diagnoseKeepalivedJournal,
  diagnoseKubectl,
  judgePlacement,
  observeScript,
  parseObservation,
  type HostObservation,
  type PlacementVerdict,
} from './observe.js';

export interface GateOptions {
  spec: ClusterSpec;
  /** Gate id for progress and errors (e.g. vip-on-primary, final-check). */
  gate: string;
  /** Host the gate is about (shown in messages). */
  host: string;
  /** Every connected master: the VIP must be on `expectedHolder` and on none of the others. */
  remotes: readonly Remote[];
  /** Undefined when the primary is outside --limit. */
  expectedHolder: string | undefined;
  expectedInterface?: string | undefined;
  /** Hosts on which `kubectl version` through the VIP must succeed. */
  kubectlOn: readonly string[];
  timeoutMs: number;
  intervalMs: number;
  emit: (e: RunEvent) => void;
  /** Facts of the expected holder's interfaces, for diagnosing a VIP that never arrives. */
  interfaces?: InterfaceFacts[] | undefined;
  signal?: AbortSignal | undefined;
  /** Poll addresses alone until the VIP is placed, then add kubectl (for a primary just started). */
  vipFirst?: boolean;
}

class NotYet extends Error {
  constructor(
    readonly verdict: PlacementVerdict,
    readonly observations: HostObservation[],
  ) {
    super(verdict.ok ? 'kubectl through the VIP not answering yet' : verdict.message);
  }
}

async function observeAll(opts: GateOptions, kubectl: boolean): Promise<HostObservation[]> {
  return Promise.all(
    opts.remotes.map(async (r) => {
      const withKubectl = kubectl && opts.kubectlOn.includes(r.host);
      let res;
      try {
        res = await r.run(observeScript(opts.spec, withKubectl), { label: `observe VIP${withKubectl ? ' + kubectl version' : ''}` });
      } catch (err) {
        throw new AbortError(err instanceof Error ? err : new Error(String(err)));
      }
      if (res.code !== 0 && !res.stdout.includes('inet')) {
        throw new AbortError(
          new HostStepError(r.host, opts.gate, `could not read the host's addresses (exit ${res.code})`, { seen: res.stderr }),
        );
      }
      return parseObservation(r.host, res.stdout, opts.spec.vip);
    }),
  );
}

/** Resolves with the VIP holder ('' when nobody and nobody was expected); throws GateError. */
export async function waitForGate(opts: GateOptions): Promise<string> {
  const started = Date.now();
  try {
    return await pRetry(
      async () => {
        // While the VIP is expected to be absent still (a primary coming up), look at addresses only:
        // kubectl towards a VIP nobody holds waits seconds for ARP. Once it is placed, check both at once.
        let obs = await observeAll(opts, !opts.vipFirst);
        let verdict = judgePlacement(obs, opts.spec.vip, opts.expectedHolder, opts.expectedInterface);
        if (opts.vipFirst && verdict.ok) {
          obs = await observeAll(opts, true);
          verdict = judgePlacement(obs, opts.spec.vip, opts.expectedHolder, opts.expectedInterface);
        }
        const kubectlOk = opts.kubectlOn.every((h) => obs.find((o) => o.host === h)?.kubectl?.ok);
        if (verdict.ok && kubectlOk) return verdict.holder;
        throw new NotYet(verdict, obs);
      },
      {
        retries: Number.MAX_SAFE_INTEGER,
        factor: 1,
        minTimeout: opts.intervalMs,
        maxTimeout: opts.intervalMs,
        maxRetryTime: opts.timeoutMs,
        ...(opts.signal ? { signal: opts.signal } : {}),
        onFailedAttempt: ({ error, attemptNumber }) => {
          const waited = Math.round((Date.now() - started) / 1000);
          opts.emit({
            type: 'gate-wait',
            host: opts.host,
            gate: opts.gate,
            attempt: attemptNumber,
            message: `waiting ${waited}s/${Math.round(opts.timeoutMs / 1000)}s: ${error.message}`,
          });
        },
      },
    );
  } catch (err) {
    if (err instanceof NotYet) throw await explain(opts, err);
    throw err;
  }
}

/** MAC of whoever answers ARP/NDP for the VIP, seen from this host after kubectl tried to reach it. */
async function vipNeighbour(remote: Remote | undefined, spec: ClusterSpec): Promise<string | undefined> {
  if (!remote) return undefined;
  try {
    const probe = `${scriptTag('neighbour')}\n{\n${observeScript(spec, true)}\n} >/dev/null 2>&1\nip neigh show ${shellQuote(spec.vip)}`;
    const res = await remote.run(probe, { label: 'kubectl towards the VIP, then ip neigh show VIP' });
    const m = /lladdr\s+([0-9a-f:]+)\s+(?:\S+\s+)*?(REACHABLE|STALE|DELAY|PROBE|PERMANENT)/i.exec(res.stdout);
    return m?.[1];
  } catch {
    return undefined;
  }
}

/** Turn the last observation into an error an operator can act on. */
async function explain(opts: GateOptions, last: NotYet): Promise<GateError> {
  const { spec } = opts;
  const secs = Math.round(opts.timeoutMs / 1000);
  const v = last.verdict;
  const byHost = new Map(opts.remotes.map((r) => [r.host, r]));
  if (!v.ok) {
    if (v.kind === 'split-brain') {
      const seen = (await Promise.all(v.holders.map(async (h) => `--- ${h}: journalctl -u keepalived\n${await journalTail(byHost.get(h), 'keepalived', 25)}`))).join('\n');
      return new GateError(opts.host, opts.gate, `${v.message} after ${secs}s`, {
        seen,
        hint:
          'the masters do not hear each other\'s VRRP adverts: allow IP protocol 112 (VRRP) multicast to 224.0.0.18 between the masters ' +
          '(firewalld: --add-rich-rule=\'rule protocol value="vrrp" accept\'), check that all masters share one virtual_router_id, VIP and auth, then rerun',
      });
    }
    const target = v.kind === 'wrong-host' ? v.holders[0]! : (opts.expectedHolder ?? opts.host);
    const jr = await journalTail(byHost.get(opts.expectedHolder ?? opts.host), 'keepalived', 25);
    const diag = diagnoseKeepalivedJournal(jr, spec.virtualRouterId);
    const subnet = opts.interfaces && opts.expectedInterface ? vipSubnetProblem(opts.interfaces, opts.expectedInterface, spec.vip) : undefined;
    let hint =
      v.kind === 'wrong-host'
        ? `${target} holds the VIP although ${opts.expectedHolder} has the highest priority: check its keepalived.conf priority and that both run the same instance; an address conflict outside the masters can also cause this`
        : `check 'journalctl -u keepalived' on ${opts.expectedHolder ?? opts.host} and that no other machine on the subnet owns ${spec.vip}`;
    let message = `${v.message} after ${secs}s`;
    const owner = v.kind === 'nobody' ? await vipNeighbour(byHost.get(opts.expectedHolder ?? opts.host), spec) : undefined;
    if (owner) {
      message += `; another machine answers for ${spec.vip} (MAC ${owner}): it is not one of the masters in this run`;
      hint = `find the machine with MAC ${owner} and free the address, or choose an unused vip; if it is a master left out with --limit, include it`;
    } else if (diag) {
      message += `; ${diag.message}`;
      hint = diag.hint;
    } else if (subnet) {
      message += `; ${subnet.message}`;
      hint = subnet.hint;
    }
    return new GateError(opts.host, opts.gate, message, { seen: jr ? `journalctl -u keepalived on ${opts.expectedHolder ?? opts.host}:\n${jr}` : undefined, hint });
  }
  const failing = last.observations.find((o) => opts.kubectlOn.includes(o.host) && !o.kubectl?.ok);
  const k = failing?.kubectl ?? { ok: false, exitCode: -1, output: '(no output)' };
  const d = diagnoseKubectl(spec, k);
  return new GateError(failing?.host ?? opts.host, opts.gate, `${d.message} (gave up after ${secs}s)`, {
    seen: k.output,
    hint: d.hint,
  });
}
