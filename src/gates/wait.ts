// I/O side of the gates: poll the hosts (one command each per attempt) until the VIP is where it
// should be and kubectl answers through it, or the deadline passes; then say why not.
import pRetry, { AbortError } from 'p-retry';
import { DeadlineError, GateError } from '../errors.js';
import { FactsParseError } from '../facts.js';
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
  judgeHealth,
  type HealthProbe,
  type HealthProblem,
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
  /** Undefined when the primary is outside --limit, or when any one holder is right (no preemption). */
  expectedHolder: string | undefined;
  /** How messages name the expected holder (default: `the primary NAME`). */
  expectedLabel?: string;
  /** Some master must hold the VIP even without an expected one (vrrp_preempt=false). */
  requireHolder?: boolean;
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
  /** Also prove these masters can take over: keepalived MASTER/BACKUP (no FAULT), own haproxy serves, every backend UP. */
  health?: { hosts: readonly string[]; probes: ReadonlyMap<string, HealthProbe> };
}

/** What a gate saw when it passed. */
export interface GatePassed {
  /** The VIP holder ('' when nobody holds it and nobody was expected). */
  holder: string;
  /** kubectl's Server Version through the VIP (from the gate's host), when kubectl was checked. */
  serverVersion?: string;
  elapsedMs: number;
}

/** Answers that will not change by waiting: seen this many times in a row, the gate gives up at once. */
export const PERMANENT_AFTER = 3;
/** Bound for one observation (kubectl has --request-timeout=5s; an exec plugin in the kubeconfig may hang). */
export const OBSERVE_TIMEOUT_MS = 20_000;

class NotYet extends Error {
  constructor(
    readonly verdict: PlacementVerdict,
    readonly observations: HostObservation[],
    readonly health: HealthProblem[] = [],
  ) {
    super(!verdict.ok ? verdict.message : health.length > 0 ? health.map((p) => p.message).join('; ') : 'kubectl through the VIP not answering yet');
  }
}

async function observeAll(opts: GateOptions, kubectl: boolean): Promise<HostObservation[]> {
  return Promise.all(
    opts.remotes.map(async (r) => {
      const withKubectl = kubectl && opts.kubectlOn.includes(r.host);
      let res;
      try {
        const probe = opts.health?.hosts.includes(r.host) ? opts.health.probes.get(r.host) : undefined;
        res = await r.run(observeScript(opts.spec, withKubectl, probe), {
          label: `observe VIP${withKubectl ? ' + kubectl version' : ''}`,
          timeoutMs: OBSERVE_TIMEOUT_MS,
          ...(opts.signal ? { signal: opts.signal } : {}),
        });
      } catch (err) {
        if (err instanceof DeadlineError) {
          throw new AbortError(new DeadlineError(r.host, opts.gate, err.timeoutMs, err.seen ?? '', { what: 'the VIP/kubectl check', hint: `a kubeconfig exec plugin or a stuck kubectl on ${r.host} can do this: run the same kubectl by hand there` }));
        }
        throw new AbortError(err instanceof Error ? err : new Error(String(err)));
      }
      try {
        return parseObservation(r.host, res.stdout, opts.spec.vip);
      } catch (err) {
        if (!(err instanceof FactsParseError)) throw err;
        throw new AbortError(
          new GateError(r.host, opts.gate, `could not read what ${r.host} showed for the VIP check: ${err.problem} (exit ${res.code})`, {
            seen: [...err.lines, res.stderr.trim()].filter(Boolean).join('\n'),
            hint: "a login script that prints (~/.bashrc, motd) is fine; a host without 'ip' (iproute2) is not: install it and rerun",
          }),
        );
      }
    }),
  );
}

/** The same x509 answer on the same host, for counting repeats. */
function permanentAnswer(opts: GateOptions, verdict: PlacementVerdict, obs: HostObservation[]): string | undefined {
  if (!verdict.ok) return undefined;
  const failing = obs.find((o) => opts.kubectlOn.includes(o.host) && o.kubectl && !o.kubectl.ok);
  if (!failing?.kubectl || !/x509|certificate is (valid|not valid) for/i.test(failing.kubectl.output)) return undefined;
  return `${failing.host}\n${failing.kubectl.output}`;
}

/** Resolves when the gate passes; throws GateError (or the error that stopped it: DeadlineError, a lost connection). */
export async function waitForGate(opts: GateOptions): Promise<GatePassed> {
  const started = Date.now();
  let repeat: { key: string; count: number } | undefined;
  try {
    return await pRetry(
      async () => {
        // While the VIP is expected to be absent still (a primary coming up), look at addresses only:
        // kubectl towards a VIP nobody holds waits seconds for ARP. Once it is placed, check both at once.
        let obs = await observeAll(opts, !opts.vipFirst);
        let verdict = judgePlacement(obs, opts.spec.vip, opts.expectedHolder, opts.expectedInterface, opts.expectedLabel);
        if (opts.vipFirst && verdict.ok) {
          obs = await observeAll(opts, true);
          verdict = judgePlacement(obs, opts.spec.vip, opts.expectedHolder, opts.expectedInterface, opts.expectedLabel);
        }
        if (opts.requireHolder && verdict.ok && verdict.holder === '') {
          verdict = { ok: false, kind: 'nobody', holders: [], message: `the VIP ${opts.spec.vip} is on no master` };
        }
        const kubectlOk = opts.kubectlOn.every((h) => obs.find((o) => o.host === h)?.kubectl?.ok);
        const health = verdict.ok && kubectlOk && opts.health ? judgeHealth(obs, verdict.holder, opts.health.hosts, opts.spec.vipPort) : [];
        if (verdict.ok && kubectlOk && health.length === 0) {
          const sv = obs.find((o) => o.host === opts.host)?.kubectl?.serverVersion ?? obs.find((o) => o.kubectl?.serverVersion)?.kubectl?.serverVersion;
          return { holder: verdict.holder, elapsedMs: Date.now() - started, ...(sv ? { serverVersion: sv } : {}) };
        }
        const notYet = new NotYet(verdict, obs, health);
        const key = permanentAnswer(opts, verdict, obs);
        repeat = key === undefined ? undefined : { key, count: repeat?.key === key ? repeat.count + 1 : 1 };
        if (repeat && repeat.count >= PERMANENT_AFTER) throw new AbortError(notYet);
        throw notYet;
      },
      {
        retries: Number.MAX_SAFE_INTEGER,
        factor: 1,
        minTimeout: opts.intervalMs,
        maxTimeout: opts.intervalMs,
        maxRetryTime: opts.timeoutMs,
        ...(opts.signal ? { signal: opts.signal } : {}),
        shouldRetry: ({ error }) => error instanceof NotYet,
        onFailedAttempt: ({ error, attemptNumber }) => {
          if (!(error instanceof NotYet)) return;
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
    if (err instanceof NotYet) throw await explain(opts, err, Date.now() - started, repeat !== undefined && repeat.count >= PERMANENT_AFTER);
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
async function explain(opts: GateOptions, last: NotYet, elapsedMs: number, permanent: boolean): Promise<GateError> {
  const { spec } = opts;
  const secs = Math.round(elapsedMs / 1000);
  const v = last.verdict;
  const holders = last.observations.filter((o) => o.vipOn.length > 0).map((o) => o.host);
  const byHost = new Map(opts.remotes.map((r) => [r.host, r]));
  if (!v.ok) {
    if (v.kind === 'split-brain') {
      const seen = (await Promise.all(v.holders.map(async (h) => `--- ${h}: journalctl -u keepalived\n${await journalTail(byHost.get(h), 'keepalived', 25)}`))).join('\n');
      return new GateError(opts.host, opts.gate, `${v.message} after ${secs}s`, {
        seen,
        hosts: v.holders,
        holders,
        hint:
          'the masters do not hear each other\'s VRRP adverts: allow IP protocol 112 (VRRP) multicast to 224.0.0.18 between the masters ' +
          '(firewalld: --add-rich-rule=\'rule protocol value="vrrp" accept\'), check that all masters share one virtual_router_id, VIP and auth, then rerun',
      });
    }
    const expected = opts.expectedHolder ?? opts.host;
    const target = v.kind === 'wrong-host' ? v.holders[0]! : expected;
    const jr = await journalTail(byHost.get(expected), 'keepalived', 25);
    const diag = diagnoseKeepalivedJournal(jr, spec.virtualRouterId);
    const subnet = opts.interfaces && opts.expectedInterface ? vipSubnetProblem(opts.interfaces, opts.expectedInterface, spec.vip) : undefined;
    let hint =
      v.kind === 'wrong-host'
        ? `${target} holds the VIP although ${opts.expectedHolder} should${opts.expectedLabel ? '' : ' (it has the highest priority)'}: check its keepalived.conf priority and that both run the same instance; an address conflict outside the masters can also cause this`
        : `check 'journalctl -u keepalived' on ${expected} and that no other machine on the subnet owns ${spec.vip}`;
    let message = `${v.message} after ${secs}s`;
    const owner = v.kind === 'nobody' ? await vipNeighbour(byHost.get(expected), spec) : undefined;
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
    return new GateError(opts.host, opts.gate, message, {
      seen: jr ? `journalctl -u keepalived on ${expected}:\n${jr}` : undefined,
      hint,
      hosts: v.kind === 'wrong-host' ? [expected, ...v.holders.filter((h) => h !== expected)] : [expected],
      holders,
    });
  }
  if (last.health.length > 0) {
    const hosts = [...new Set(last.health.map((p) => p.host))];
    return new GateError(hosts[0]!, opts.gate, `${last.health.map((p) => p.message).join('; ')} (gave up after ${secs}s)`, {
      seen: last.health.flatMap((p) => (p.seen ? [`--- ${p.host}:\n${p.seen}`] : [])).join('\n'),
      hint:
        'a master that cannot take the VIP over makes the next failure an outage: read the lines above (journalctl -u keepalived, haproxy\'s view of the backends), ' +
        'fix that master (a FAULT names the failing track; a DOWN backend names its check status), then rerun',
      hosts,
      holders,
    });
  }
  const failingAll = last.observations.filter((o) => opts.kubectlOn.includes(o.host) && !o.kubectl?.ok);
  const failing = failingAll[0];
  const k = failing?.kubectl ?? { ok: false, exitCode: -1, output: '(no output)' };
  const d = diagnoseKubectl(spec, k);
  const when = permanent ? `the same answer ${PERMANENT_AFTER} times in a row, after ${secs}s` : `gave up after ${secs}s`;
  return new GateError(failing?.host ?? opts.host, opts.gate, `${d.message} (${when})`, {
    seen: k.output,
    hint: d.hint,
    hosts: failingAll.map((o) => o.host),
    holders,
  });
}
