// `kha-deploy check` (and `deploy --check`): what a deploy would do, changing nothing. The I/O part
// takes the run lock and reads the facts exactly as deploy does, plans every master, reads the
// managed files whose hash differs (one read-only command per master, only when one differs), and
// releases the lock. The pure part turns plans and file contents into the report, its text and exit code.
import { createTwoFilesPatch } from 'diff';
import { hostname, userInfo } from 'node:os';
import { HostStepError, KhaError, ManyErrors } from '../errors.js';
import { FactsParseError } from '../facts.js';
import type { Playbook } from '../playbook.js';
import { maskSecrets } from '../report/redact.js';
import { changeOrder, type ChangeOrder } from '../plan-order.js';
import { FACTS_TIMEOUT_MS, authDiffers, authHash, lockAndPlan, newAuthSalt, toKhaError } from '../runner/rollout.js';
import { shellQuote, scriptTag } from '../shell.js';
import type { ClusterSpec, HostFacts, HostPlan, HostSpec, Remote, RunContext } from '../types.js';

/** Exit code of check when a deploy would change something. */
export const EXIT_CHANGES_PENDING = 3;

/** One master as check saw it: its plan and the current content of each file the plan writes (null: missing). */
export interface HostCheckInput {
  host: string;
  plan: HostPlan;
  current: Record<string, string | null>;
  /** The facts the plan came from: the change order depends on who holds the VIP (src/plan-order.ts). */
  facts?: HostFacts;
  /**
   * The keepalived.conf on the host has another vrrp_auth_pass than the inventory's: a managed instance
   * move, as deploy plans it. Compared as deploy does, through a hash salted per run computed on the host
   * (neither the pass nor a reusable hash leaves it); see authDiffers() in src/runner/rollout.ts.
   */
  authDiffers?: boolean;
}

export interface FileChange {
  path: string;
  /** Unified diff of the host's file against the rendered one, secrets masked. */
  diff: string;
}

export interface HostCheckReport {
  host: string;
  role: 'primary' | 'backup';
  converged: boolean;
  packages: string[];
  files: FileChange[];
  /** e.g. `haproxy: reload`, `keepalived: enable-start`. */
  units: string[];
  /** Other changes (a directory to create). */
  other: string[];
  /** Why, step by step. */
  reasons: string[];
  warnings: string[];
}

export interface CheckReport {
  ok: boolean;
  exitCode: number;
  inventory: string;
  primary: string;
  vip: string;
  converged: boolean;
  /** The masters a deploy would change, in the order it would change them (packages first, on all at once). */
  changeOrder: string[];
  /** Why that order (primary first on a first deploy; the VIP holder last on a running cluster, any VIP move). */
  changeOrderReason: string;
  hosts: HostCheckReport[];
}

// ---------- pure ----------

/** Unified diff of `before` (the host's file, null when missing) → `after` (rendered); secrets masked on both sides first. */
export function fileDiff(path: string, before: string | null, after: string): string {
  const a = maskSecrets(before ?? '');
  const b = maskSecrets(after);
  if (a === b) return `--- ${path}\n+++ ${path} (rendered)\n(only secret values differ; they are not shown)\n`;
  const patch = createTwoFilesPatch(before === null ? '/dev/null' : path, `${path} (rendered)`, a, b, '', '', { context: 3 });
  // The library starts with a line of '=' and puts a tab after each file name: plain `--- NAME` lines read better.
  return patch
    .replace(/^=+\n/, '')
    .replace(/^(---|\+\+\+) (.*?)\t?$/gm, '$1 $2');
}

export function checkReport(spec: ClusterSpec, inputs: readonly HostCheckInput[]): CheckReport {
  const byName = new Map(inputs.map((i) => [i.host, i]));
  const hosts = spec.order.filter((n) => byName.has(n)).map((n) => hostReport(spec, byName.get(n)!));
  const order = changeOrder(spec, inputs.map((i) => ({ name: i.host, facts: i.facts, plan: i.plan, authDiffers: i.authDiffers === true })));
  for (const h of hosts) stoppedFirst(h, order, byName.get(h.host)!);
  const converged = hosts.every((h) => h.converged);
  return {
    ok: true,
    exitCode: converged ? 0 : EXIT_CHANGES_PENDING,
    inventory: spec.file,
    primary: spec.primary,
    vip: spec.vip,
    converged,
    // The same decision deploy follows (src/plan-order.ts).
    changeOrder: order.steps.filter((s) => s.changes).map((s) => s.host),
    changeOrderReason: order.reason,
    hosts,
  };
}

function hostReport(spec: ClusterSpec, input: HostCheckInput): HostCheckReport {
  const r: HostCheckReport = {
    host: input.host,
    role: input.host === spec.primary ? 'primary' : 'backup',
    converged: true,
    packages: [],
    files: [],
    units: [],
    other: [],
    reasons: [],
    warnings: input.plan.warnings,
  };
  for (const step of input.plan.steps) {
    if (step.ops.length === 0) continue;
    r.converged = false;
    if (step.reason) r.reasons.push(`${step.title}: ${step.reason}`);
    for (const op of step.ops) {
      if (op.op === 'write-file') r.files.push({ path: op.path, diff: fileDiff(op.path, input.current[op.path] ?? null, op.content) });
      else if (op.op === 'service') r.units.push(`${op.unit}: ${op.action}`);
      else if (step.id === 'packages') r.packages.push(op.description);
      else r.other.push(op.description);
    }
  }
  return r;
}

/**
 * keepalived's unit lines as deploy runs them where the order stops keepalived before the change
 * (src/runner/rollout.ts): a managed instance move (stopped, then started only after the holder's
 * change) or the holder's own instance recreated (stopped, the VIP moves away, then started).
 */
function stoppedFirst(r: HostCheckReport, order: ChangeOrder, input: HostCheckInput): void {
  const step = order.steps.find((st) => st.host === r.host && st.changes);
  const active = input.facts?.units.keepalived.active;
  if (!step) return;
  const isKeepalivedStart = (u: string) => /^keepalived: (enable-start|reload|restart)$/.test(u);
  if (step.keepalivedStopped && active !== undefined && active !== 'inactive' && active !== '') {
    const move = order.instanceMove?.changes.join(', ') ?? 'the VRRP instance changes';
    r.units = [
      `keepalived: stop before the change (VRRP instance move: ${move})`,
      ...r.units.filter((u) => !isKeepalivedStart(u)),
      `keepalived: enable-start after ${order.holder}'s change (joins the new instance with the others)`,
    ];
  } else if (step.moveAwayFirst && active === 'active') {
    r.units = [
      `keepalived: stop before the change (its instance is recreated; the VIP moves to ${step.moveAwayFirst.to} first)`,
      ...r.units.filter((u) => !isKeepalivedStart(u)),
      'keepalived: enable-start (takes the VIP back)',
    ];
  } else return;
  r.converged = false;
}

/** The exit code of check: 0 converged, 3 changes pending. */
export function checkExitCode(plans: readonly HostPlan[]): number {
  return plans.every((p) => p.steps.every((s) => s.ops.length === 0)) ? 0 : EXIT_CHANGES_PENDING;
}

const indent = (text: string, prefix: string) =>
  text
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');

export function checkText(report: CheckReport): string {
  const out: string[] = [`check ${report.inventory}: VIP ${report.vip}, primary ${report.primary} (nothing was changed)`];
  for (const h of report.hosts) {
    out.push('', `${h.host} (${h.role}): ${h.converged ? 'converged, nothing to do' : 'a deploy would change it'}`);
    for (const p of h.packages) out.push(`  packages: ${p}`);
    for (const f of h.files) out.push(`  file ${f.path}:`, indent(f.diff, '    '));
    for (const u of h.units) out.push(`  unit ${u}`);
    for (const o of h.other) out.push(`  ${o}`);
    for (const why of h.reasons) out.push(`  why: ${why}`);
    for (const w of h.warnings) out.push(`  warning: ${w}`);
  }
  out.push('');
  if (report.converged) out.push(`converged: a deploy would change nothing (exit 0)`);
  else {
    const pkgs = report.hosts.filter((h) => h.packages.length > 0).map((h) => h.host);
    out.push(
      `changes pending (exit ${EXIT_CHANGES_PENDING}): a deploy would ${pkgs.length ? `install packages on ${pkgs.join(', ')} at once, then ` : ''}change ${report.changeOrder.join(' → ')}, one at a time`,
    );
    if (report.changeOrderReason) out.push(`order: ${report.changeOrderReason}`);
  }
  return out.join('\n');
}

// ---------- I/O ----------

const FILE_MARK = '@@KHA-FILE';

/** One read-only command printing each path base64-encoded between markers (`-` for a missing file). */
export function readFilesScript(paths: readonly string[]): string {
  return [
    scriptTag('check', 'read-files'),
    `for kha_f in ${paths.map(shellQuote).join(' ')}; do`,
    `  if [ -f "$kha_f" ]; then printf '%s + %s\\n' ${FILE_MARK} "$kha_f"; base64 < "$kha_f" || exit 1; else printf '%s - %s\\n' ${FILE_MARK} "$kha_f"; fi`,
    'done',
    `printf '%s end\\n' ${FILE_MARK}`,
  ].join('\n');
}

export function parseReadFiles(host: string, stdout: string): Record<string, string | null> {
  const files: Record<string, string | null> = {};
  const lines = stdout.split('\n').map((l) => l.replace(/\r$/, ''));
  let cur: { path: string; b64: string[] } | undefined;
  const close = () => {
    if (cur) files[cur.path] = Buffer.from(cur.b64.join(''), 'base64').toString('utf8');
    cur = undefined;
  };
  let ended = false;
  for (const l of lines) {
    const m = new RegExp(`^${FILE_MARK} ([+-]) (/.*)$`).exec(l);
    if (m) {
      close();
      if (m[1] === '-') files[m[2]!] = null;
      else cur = { path: m[2]!, b64: [] };
    } else if (l === `${FILE_MARK} end`) {
      close();
      ended = true;
    } else if (cur) cur.b64.push(l.trim());
  }
  if (!ended) throw new FactsParseError(host, `the output of reading the managed files is truncated (no '${FILE_MARK} end' line)`, lines.filter((l) => l.trim()).slice(-1));
  return files;
}

export type CheckOptions = RunContext;

/** Connect, lock + facts, plan, read differing files, release. Never prints; throws KhaError/ManyErrors naming the hosts. */
export async function gatherCheck(opts: CheckOptions): Promise<HostCheckInput[]> {
  const { spec, playbook } = opts;
  const order = spec.order.filter((n) => opts.hosts.some((h) => h.name === n));
  const hosts = order.map((n) => opts.hosts.find((h) => h.name === n)!);
  // As deploy: the auth_pass on each master is compared through a hash salted per run.
  const authSalt = newAuthSalt();
  opts.emit({ type: 'phase', phase: 'connect', message: `connecting to ${order.join(', ')}` });
  const results = await Promise.allSettled(
    hosts.map(async (h) => {
      let remote: Remote | undefined;
      try {
        remote = await opts.connect(h);
        return await checkHost(h, remote, spec, playbook, authSalt, opts.signal);
      } catch (err) {
        throw toKhaError(h.name, 'check', err);
      } finally {
        await remote?.close().catch(() => undefined);
      }
    }),
  );
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as KhaError] : []));
  if (errors.length > 0) throw new ManyErrors(errors, `${errors.length} master${errors.length === 1 ? '' : 's'} could not be checked; no host was changed`);
  return results.map((r) => (r as PromiseFulfilledResult<HostCheckInput>).value);
}

async function checkHost(h: HostSpec, remote: Remote, spec: ClusterSpec, playbook: Playbook, authSalt: string, signal?: AbortSignal): Promise<HostCheckInput> {
  const name = h.name;
  const { held, facts, plan, authHash: hostAuth } = await lockAndPlan(remote, h, spec, playbook, {
    owner: `kha-deploy check pid ${process.pid} by ${userInfo().username}@${hostname()}`,
    preflight: false,
    authSalt,
    lockedHint: 'wait for the other run to finish, then check again (check never breaks a lock)',
    ...(signal ? { signal } : {}),
  });
  try {
    const paths = plan.steps.flatMap((s) => s.ops.flatMap((o) => (o.op === 'write-file' && facts.files[o.path] ? [o.path] : [])));
    let current: Record<string, string | null> = {};
    if (paths.length > 0) {
      const res = await remote.run(readFilesScript(paths), { label: 'read the managed files that differ', timeoutMs: FACTS_TIMEOUT_MS, ...(signal ? { signal } : {}) });
      if (res.code !== 0) throw new HostStepError(name, 'check', `reading the managed files failed (exit ${res.code})`, { seen: res.stderr.trim(), hint: 'check needs base64 (coreutils) on the host' });
      current = parseReadFiles(name, res.stdout);
    }
    return { host: name, plan, current, facts, authDiffers: authDiffers(hostAuth, facts, authHash(authSalt, spec.vrrpAuthPass)) };
  } finally {
    await held.release();
  }
}
