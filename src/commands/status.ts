// `kha-deploy status`: the health of every master, read-only (no lock). One command per master:
// the facts, the priority in the keepalived.conf on disk, and observeScript with kubectl and the
// health probes. The pure part judges (healthy or degraded, with reasons) and renders the table / JSON.
import { HostStepError, KhaError } from '../errors.js';
import { FactsParseError, factsScript, parseFacts } from '../facts.js';
import { judgeHealth, observeScript, parseObservation, type BackendView, type HostObservation } from '../gates/observe.js';
import { planHost } from '../plan.js';
import type { Playbook } from '../playbook.js';
import { maskSecrets } from '../report/redact.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec, HostFacts, HostPlan, HostSpec, Remote, RunContext } from '../types.js';

/** What status read from one master (error: it could not be read). */
export interface HostStatusInput {
  host: string;
  facts?: HostFacts;
  /** The plan for this master (drift = steps with ops), or why it could not be planned. */
  plan?: HostPlan;
  planError?: string;
  /** `priority N` of the keepalived.conf on disk (null: none found). */
  priority?: number | null;
  observation?: HostObservation;
  error?: string;
}

export interface HostStatus {
  host: string;
  role: 'primary' | 'backup';
  reachable: boolean;
  keepalived: { active: string; enabled: string };
  haproxy: { active: string; enabled: string };
  vrrpState: string;
  priority: number | null;
  holdsVip: boolean;
  /** haproxy's view of every apiserver (null: its monitor did not answer). */
  backends: BackendView[] | null;
  kubectl: { ok: boolean; serverVersion?: string } | null;
  /** What a deploy would change here ('' entries never); empty: no drift. */
  drift: string[];
  problems: string[];
}

export interface StatusReport {
  ok: boolean;
  exitCode: number;
  healthy: boolean;
  inventory: string;
  vip: string;
  primary: string;
  /** Who holds the VIP now (several: split brain). */
  vipHolders: string[];
  hosts: HostStatus[];
  /** Why the cluster is degraded (empty when healthy). */
  reasons: string[];
}

// ---------- pure ----------

export function statusReport(spec: ClusterSpec, inputs: readonly HostStatusInput[]): StatusReport {
  const byName = new Map(inputs.map((i) => [i.host, i]));
  const names = spec.order.filter((n) => byName.has(n));
  const observations = names.flatMap((n) => (byName.get(n)!.observation ? [byName.get(n)!.observation!] : []));
  const holders = observations.filter((o) => o.vipOn.length > 0).map((o) => o.host);
  const reasons: string[] = [];
  const perHost = new Map<string, string[]>(names.map((n) => [n, []]));
  const problem = (host: string | undefined, message: string) => {
    reasons.push(message);
    if (host) perHost.get(host)?.push(message);
  };

  if (holders.length > 1) for (const h of holders) problem(h, `SPLIT BRAIN: the VIP ${spec.vip} is on ${holders.length} masters at once (${holders.join(', ')})`);
  else if (holders.length === 0 && observations.length > 0) {
    // Under --limit without the primary, the holder may be a master that was not asked.
    if (names.includes(spec.primary) || names.length === spec.order.length) problem(undefined, `NOBODY holds the VIP ${spec.vip}: kubectl through it cannot work`);
  } else if (holders.length === 1 && spec.vrrpPreempt !== false && names.includes(spec.primary) && holders[0] !== spec.primary) {
    problem(holders[0], `the VIP ${spec.vip} is on ${holders[0]}, not on the primary ${spec.primary}: keepalived moved it there (see the primary's problems)`);
  }

  for (const n of names) {
    const i = byName.get(n)!;
    if (i.error !== undefined) {
      problem(n, `${n} could not be read: ${i.error}`);
      continue;
    }
    for (const unit of ['keepalived', 'haproxy'] as const) {
      const u = i.facts!.units[unit];
      if (u.active !== 'active') problem(n, `${unit} is ${u.active || 'not installed'} on ${n}`);
      else if (u.enabled !== 'enabled') problem(n, `${unit} on ${n} is not enabled at boot (${u.enabled || 'unknown'})`);
    }
    if (i.planError !== undefined) problem(n, `${n} cannot be planned: ${i.planError}`);
    const drift = driftOf(i.plan);
    if (drift.length > 0) problem(n, `drift on ${n}: ${drift.join('; ')} (kha-deploy check shows what a deploy would change; kha-deploy converges it)`);
    const k = i.observation?.kubectl;
    if (k && !k.ok && holders.length > 0) problem(n, `kubectl through the VIP does not answer from ${n} (exit ${k.exitCode}): ${k.output.split('\n').slice(-1)[0] ?? ''}`);
  }
  // The load-balancer path: VRRP state against the holder, own haproxy serving, every backend UP.
  const holder = holders.length === 1 ? holders[0]! : '';
  for (const p of judgeHealth(observations, holder, names, spec.vipPort)) {
    // A stopped keepalived or haproxy is already said from the units; keep the more specific lines.
    problem(p.host, p.message);
  }

  const hosts = names.map<HostStatus>((n) => {
    const i = byName.get(n)!;
    const h = i.observation?.health;
    const unit = (u: 'keepalived' | 'haproxy') => ({ active: i.facts?.units[u].active ?? '', enabled: i.facts?.units[u].enabled ?? '' });
    return {
      host: n,
      role: n === spec.primary ? 'primary' : 'backup',
      reachable: i.error === undefined,
      keepalived: unit('keepalived'),
      haproxy: unit('haproxy'),
      vrrpState: h?.vrrpState ?? '',
      priority: i.priority ?? null,
      holdsVip: holders.includes(n),
      backends: h?.backends ?? null,
      kubectl: i.observation?.kubectl ? { ok: i.observation.kubectl.ok, ...(i.observation.kubectl.serverVersion ? { serverVersion: i.observation.kubectl.serverVersion } : {}) } : null,
      drift: driftOf(i.plan),
      problems: [...new Set(perHost.get(n))].map(maskSecrets),
    };
  });
  const unique = [...new Set(reasons)].map(maskSecrets);
  const healthy = unique.length === 0;
  return { ok: healthy, exitCode: healthy ? 0 : 1, healthy, inventory: spec.file, vip: spec.vip, primary: spec.primary, vipHolders: holders, hosts, reasons: unique };
}

function driftOf(plan: HostPlan | undefined): string[] {
  return (plan?.steps ?? []).filter((s) => s.ops.length > 0).map((s) => s.reason || s.title);
}

export interface Paint {
  ok(s: string): string;
  bad(s: string): string;
  warn(s: string): string;
  bold(s: string): string;
}

export const NO_PAINT: Paint = { ok: (s) => s, bad: (s) => s, warn: (s) => s, bold: (s) => s };
export const ANSI_PAINT: Paint = {
  ok: (s) => `\x1b[32m${s}\x1b[0m`,
  bad: (s) => `\x1b[31m${s}\x1b[0m`,
  warn: (s) => `\x1b[33m${s}\x1b[0m`,
  bold: (s) => `\x1b[1m${s}\x1b[0m`,
};

/** Colour only on a terminal, and never with NO_COLOR set (https://no-color.org). */
export function pickPaint(isTTY: boolean, env: NodeJS.ProcessEnv): Paint {
  return isTTY && (env.NO_COLOR ?? '') === '' ? ANSI_PAINT : NO_PAINT;
}

export function statusText(r: StatusReport, paint: Paint = NO_PAINT): string {
  const unitCell = (u: { active: string; enabled: string }) => `${u.active || '-'}/${u.enabled || '-'}`;
  const rows = r.hosts.map((h) => {
    const up = h.backends?.filter((b) => b.status === 'UP').length ?? 0;
    return {
      h,
      cells: [
        `${h.host}${h.role === 'primary' ? '*' : ''}`,
        h.reachable ? unitCell(h.keepalived) : 'UNREACHABLE',
        h.reachable ? unitCell(h.haproxy) : '',
        h.vrrpState || '-',
        h.priority === null ? '-' : String(h.priority),
        h.holdsVip ? 'HOLDS VIP' : '-',
        h.backends === null ? (h.reachable ? 'no answer' : '') : `${up}/${h.backends.length} UP`,
        h.drift.length > 0 ? `${h.drift.length} step(s)` : h.reachable ? 'none' : '',
      ],
    };
  });
  const head = ['MASTER', 'KEEPALIVED', 'HAPROXY', 'VRRP', 'PRIO', 'VIP', 'BACKENDS', 'DRIFT'];
  const widths = head.map((t, c) => Math.max(t.length, ...rows.map((row) => row.cells[c]!.length)));
  const line = (cells: string[], color?: (s: string, c: number) => string) =>
    cells
      .map((s, c) => {
        const padded = c === cells.length - 1 ? s : s.padEnd(widths[c]!);
        return color ? color(padded, c) : padded;
      })
      .join('  ')
      .trimEnd();
  const out = [`status ${r.inventory}: VIP ${r.vip}, primary ${r.primary} (*)`, '', line(head)];
  for (const { h, cells } of rows) {
    out.push(
      line(cells, (s, c) => {
        if (c === 0) return h.problems.length > 0 ? paint.bad(s) : paint.ok(s);
        if (c === 1 || c === 2) return s.startsWith('active/enabled') ? paint.ok(s) : paint.bad(s);
        if (c === 3) return /MASTER|BACKUP/.test(s) ? paint.ok(s) : paint.bad(s);
        if (c === 6) return h.backends !== null && h.backends.every((b) => b.status === 'UP') ? paint.ok(s) : paint.bad(s);
        if (c === 7) return s.startsWith('none') ? paint.ok(s) : paint.warn(s);
        return s;
      }),
    );
  }
  out.push('', "haproxy's view of the apiservers:");
  for (const h of r.hosts) {
    const view = h.backends === null ? paint.bad('its monitor did not answer') : h.backends.map((b) => `${b.name} ${b.status === 'UP' ? paint.ok(b.status) : paint.bad(b.status)} (${b.checkStatus || 'no check yet'})`).join(', ');
    out.push(`  ${h.host}: ${view}`);
  }
  out.push('');
  const hs = r.vipHolders;
  if (hs.length === 1) out.push(`VIP ${r.vip} is on ${hs[0]}${hs[0] === r.primary ? ', the primary' : ''}`);
  else if (hs.length === 0) out.push(paint.bad(paint.bold(`!! NOBODY holds the VIP ${r.vip}`)));
  else out.push(paint.bad(paint.bold(`!! SPLIT BRAIN: the VIP ${r.vip} is on ${hs.join(', ')}`)));
  if (r.healthy) out.push(paint.ok('healthy (exit 0)'));
  else {
    out.push(paint.bad(`DEGRADED (exit 1):`));
    for (const reason of r.reasons) out.push(`  - ${reason}`);
  }
  return out.join('\n');
}

// ---------- I/O ----------

const PRIO_MARK = '@@KHA-PRIORITY';

/** One read-only command: the facts, the priority on disk, then the observation with kubectl and health probes. */
export function statusScript(spec: ClusterSpec, playbook: Playbook, host: HostSpec): string {
  return [
    scriptTag('status'),
    factsScript(spec, playbook),
    `echo ${PRIO_MARK}`,
    `sed -n 's/^[[:space:]]*priority[[:space:]][[:space:]]*\\([0-9][0-9]*\\).*/\\1/p' ${shellQuote(playbook.files.keepalived.path)} 2>/dev/null | head -n 1`,
    observeScript(spec, true, { address: host.address, vipPort: spec.vipPort, monitorPort: spec.haproxyMonitorPort }),
  ].join('\n');
}

/** Parse statusScript's output into facts, plan, priority and observation (pure). */
export function parseStatus(spec: ClusterSpec, playbook: Playbook, host: HostSpec, stdout: string): HostStatusInput {
  const facts = parseFacts(host.name, stdout, spec.vip);
  const at = stdout.indexOf(`\n${PRIO_MARK}\n`);
  const prioLine = at < 0 ? '' : (stdout.slice(at + PRIO_MARK.length + 2).split('\n')[0] ?? '').trim();
  const priority = /^\d+$/.test(prioLine) ? Number(prioLine) : null;
  const observation = parseObservation(host.name, stdout, spec.vip);
  const input: HostStatusInput = { host: host.name, facts, priority, observation };
  try {
    input.plan = planHost(spec, host, facts, playbook);
  } catch (err) {
    input.planError = err instanceof Error ? err.message : String(err);
  }
  return input;
}

export const STATUS_TIMEOUT_MS = 30_000;

export type StatusOptions = RunContext;

/** Read one master over an open connection; throws when it cannot be read. */
export async function readStatus(remote: Remote, spec: ClusterSpec, playbook: Playbook, host: HostSpec, signal?: AbortSignal): Promise<HostStatusInput> {
  const res = await remote.run(statusScript(spec, playbook, host), { label: 'read status', timeoutMs: STATUS_TIMEOUT_MS, ...(signal ? { signal } : {}) });
  if (res.code !== 0) throw new HostStepError(host.name, 'status', `reading the status failed (exit ${res.code})`, { seen: res.stderr.trim() });
  return parseStatus(spec, playbook, host, res.stdout);
}

/** Why a master could not be read, for its status line. */
export function unreadable(host: string, err: unknown): HostStatusInput {
  const message = err instanceof FactsParseError ? err.message : err instanceof KhaError || err instanceof Error ? err.message : String(err);
  return { host, error: message };
}

/** Read every master (in parallel); a master that cannot be read is reported in its input, not thrown. */
export async function gatherStatus(opts: StatusOptions): Promise<HostStatusInput[]> {
  const { spec, playbook } = opts;
  const hosts = spec.order.flatMap((n) => opts.hosts.filter((h) => h.name === n));
  return Promise.all(
    hosts.map(async (h): Promise<HostStatusInput> => {
      let remote: Remote | undefined;
      try {
        remote = await opts.connect(h);
        return await readStatus(remote, spec, playbook, h, opts.signal);
      } catch (err) {
        if (opts.signal?.aborted) throw err;
        return unreadable(h.name, err);
      } finally {
        await remote?.close().catch(() => undefined);
      }
    }),
  );
}
