// `kha-deploy remove [--purge]`: undo what deploy did, master by master, the VIP holder last.
//
// Pure core: the facts (src/facts.ts) plus a few removal facts read in the same locked command
// (what each managed file was before kha-deploy's first write, its backups, the state directory)
// go into planRemoval(), which returns per master the steps, the words for what each does and the
// script that does it; removalOrder() puts the masters that do not hold the VIP first. Thin I/O:
// runRemove() connects, takes the run lock and reads the facts on every master at once (any master
// that cannot be locked or read → nothing is changed), then works through the order, one master
// at a time, stopping at the first failure.
//
// Decisions (see also the README section):
// - Order: masters without the VIP first, lowest priority first (the least likely to take the VIP
//   over, so if the holder fails meanwhile, the VIP goes to a master that is still configured),
//   the holder(s) last. On each master keepalived stops before haproxy, so on the holder the VIP is
//   given up by keepalived itself (priority-0 advert), not by a failing haproxy check; it is
//   released at the very end, when no other keepalived runs any more.
// - Units: stopped (a failed one reset) and disabled; a masked unit is left alone.
// - Configs: FILE.kha-original (the file before kha-deploy's first write, src/apply.ts) is put back
//   byte for byte through a synced temp copy and a rename; FILE.kha-original-absent → ours is
//   deleted. Hosts deployed before kha-deploy kept that record: the same inference the write script
//   uses (src/apply.ts originalInferenceLines): the oldest backup when it is not ours; none when
//   kha-deploy evidently created the file; when it cannot be told (our own backups were pruned past
//   the original), ours is deleted and a warning says how to get the package's default back. Without
//   a record, a file that is not ours (replaced by hand) is left in place. A record always wins.
//   Then the record and every FILE.kha-backup-* go.
// - The tmpfiles entry (/etc/tmpfiles.d/kha-deploy-haproxy.conf) is ours by its name: deleted. The
//   directory /run/haproxy is left (a tmpfs: it goes at the next boot; Debian's package recreates it).
// - State: /var/lib/kha-deploy goes. The run lock file in /run/lock stays (a tmpfs too): deleting a
//   lock file that another run may be waiting on would let two runs hold "the" lock at once.
// - --purge: keepalived and haproxy are removed with the host's package manager (apt-get purge,
//   which also deletes their conffiles; dnf/yum remove), after the configs are restored (so rpm sees
//   its own config, and dpkg's purge leaves no stray file of ours in /etc/haproxy). Only when
//   nothing else goes with them: apt-get's simulation / rpm -e --test must list no other package,
//   else nothing is removed and the host fails with that list. curl stays: the operator may use it.
// - Idempotent: every step is planned from what the host shows, a step with nothing to do sends no
//   command; a second remove reads the facts (one command per master) and changes nothing.
import { hostname, userInfo } from 'node:os';
import { BACKUP_INFIX, ORIGINAL_ABSENT_SUFFIX, ORIGINAL_SUFFIX, originalInferenceLines } from '../apply.js';
import { ConnectError, DeadlineError, HostKeyError, HostStepError, InterruptedError, KhaError, ManyErrors } from '../errors.js';
import { FactsParseError, STATE_DIR, factsScript, parseFacts } from '../facts.js';
import { interfacesHolding } from '../gates/observe.js';
import { stepOf, type Playbook } from '../playbook.js';
import { maskSecrets } from '../report/redact.js';
import { FACTS_TIMEOUT_MS, graceSignal, runError, toKhaError } from '../runner/rollout.js';
import { READY_MARK, lockRefusal, lockScript } from '../runner/lock.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec, HeldCommand, HostFacts, HostRecap, HostSpec, ManagedUnit, PackageManager, Remote, RunEvent, StepStatus } from '../types.js';

// ---------- removal facts ----------

export const REMOVE_MARK = '@@KHA-REMOVE';

/** What a managed file was before kha-deploy's first write, as the host tells it. */
export type Original =
  | { kind: 'recorded' } // FILE.kha-original holds it
  | { kind: 'recorded-absent' } // FILE.kha-original-absent: there was none
  | { kind: 'copy'; from: string } // no record; inferred: `from` holds it (FILE itself or its oldest backup)
  | { kind: 'absent' } // no record; inferred: there was none
  | { kind: 'unknown' }; // no record; cannot be told

export interface FileFacts {
  path: string;
  /** The file now: missing, ours (kha-deploy's name or mark), or something else. */
  now: 'missing' | 'ours' | 'other';
  original: Original;
  /** Number of FILE.kha-backup-* beside it. */
  backups: number;
}

export interface RemovalFacts {
  files: FileFacts[];
  /** STATE_DIR exists. */
  stateDir: boolean;
}

/** The managed files, in the order remove handles them (configs, then the tmpfiles entry). */
export function removalPaths(playbook: Playbook): string[] {
  return [playbook.files.haproxy.path, playbook.files.keepalived.path, playbook.files.tmpfiles.path];
}

/** Read-only POSIX sh, run inside the lock after the facts script: one `remove.file` line per managed file, then `remove.state`. */
export function removalFactsScript(playbook: Playbook): string {
  const q = shellQuote;
  return [
    scriptTag('remove', 'facts'),
    '{',
    ...originalInferenceLines(),
    `printf '%s\\n' ${q(`${REMOVE_MARK} 1`)}`,
    `for kha_f in ${removalPaths(playbook).map(q).join(' ')}; do`,
    `  if [ -e "$kha_f"${ORIGINAL_SUFFIX} ]; then kha_r=recorded`,
    `  elif [ -e "$kha_f"${ORIGINAL_ABSENT_SUFFIX} ]; then kha_r=recorded-absent`,
    `  else kha_r=$(kha_original "$kha_f" ${playbook.backups}) || kha_r=unknown; fi`,
    '  if [ ! -e "$kha_f" ]; then kha_n=missing; elif kha_ours "$kha_f"; then kha_n=ours; else kha_n=other; fi',
    `  kha_b=$(ls -1d "$kha_f"${BACKUP_INFIX}* 2>/dev/null | wc -l | tr -d ' ')`,
    `  printf 'remove.file %s now=%s backups=%s original=%s\\n' "$kha_f" "$kha_n" "$kha_b" "$kha_r"`,
    'done',
    `if [ -d ${q(STATE_DIR)} ]; then echo remove.state=yes; else echo remove.state=no; fi`,
    `printf '%s\\n' ${q(`${REMOVE_MARK} end`)}`,
    '} </dev/null',
  ].join('\n');
}

/** Parse removalFactsScript's output (anything around the markers is skipped). Throws FactsParseError on what it does not understand. */
export function parseRemovalFacts(host: string, stdout: string, playbook: Playbook): RemovalFacts {
  const all = stdout.split('\n').map((l) => l.replace(/\r$/, ''));
  const begin = all.indexOf(`${REMOVE_MARK} 1`);
  if (begin < 0) throw new FactsParseError(host, `no '${REMOVE_MARK} 1' line in the output`, all.filter((l) => l.trim()).slice(-3));
  const end = all.indexOf(`${REMOVE_MARK} end`, begin);
  if (end < 0) throw new FactsParseError(host, `the removal facts are truncated (no '${REMOVE_MARK} end' line)`, all.filter((l) => l.trim()).slice(-1));
  const files = new Map<string, FileFacts>();
  let stateDir: boolean | undefined;
  for (const l of all.slice(begin + 1, end)) {
    if (l.trim() === '') continue;
    const f = /^remove\.file (\/\S*) now=(missing|ours|other) backups=(\d+) original=(recorded|recorded-absent|absent|unknown|copy (\/.*))$/.exec(l);
    if (f) {
      const [, path, now, backups, orig, from] = f as unknown as [string, string, FileFacts['now'], string, string, string | undefined];
      const original: Original = orig.startsWith('copy ') ? { kind: 'copy', from: from! } : ({ kind: orig } as Original);
      files.set(path, { path, now, original, backups: Number(backups) });
      continue;
    }
    const s = /^remove\.state=(yes|no)$/.exec(l);
    if (s) {
      stateDir = s[1] === 'yes';
      continue;
    }
    throw new FactsParseError(host, 'unexpected line in the removal facts', [l]);
  }
  const paths = removalPaths(playbook);
  const missing = paths.filter((p) => !files.has(p));
  if (missing.length > 0) throw new FactsParseError(host, `the removal facts say nothing about ${missing.join(', ')}`, []);
  if (stateDir === undefined) throw new FactsParseError(host, `'remove.state=' is missing from the removal facts`, []);
  return { files: paths.map((p) => files.get(p)!), stateDir };
}

// ---------- the plan (pure) ----------

export type RemoveStepId = 'units' | 'configs' | 'tmpfiles' | 'state' | 'packages';

export interface RemoveStep {
  id: RemoveStepId;
  title: string;
  /** What it does, one entry per action, in plain words ([]: nothing to do, no command is sent). */
  actions: string[];
  /** The remote script (null: nothing to do). */
  script: string | null;
  timeoutMs: number;
}

export interface RemovePlan {
  host: string;
  /** The VIP is on this master (per its facts). */
  holdsVip: boolean;
  steps: RemoveStep[];
  /** What the operator should know (shown when the master's turn comes). */
  warnings: string[];
}

export interface RemoveOptionsPure {
  purge: boolean;
}

const UNIT_ORDER: ManagedUnit[] = ['keepalived', 'haproxy'];
const ENABLED = new Set(['enabled', 'enabled-runtime', 'linked', 'linked-runtime']);

/** What one file needs: the file action (restore from / delete / none), then the cleanup of records and backups. */
export interface FileRemoval {
  path: string;
  /** Put this file's content back as `path` (cp -p + rename). */
  restoreFrom?: string;
  /** Delete `path`. */
  delete?: boolean;
  /** Delete the record (FILE.kha-original*) and every FILE.kha-backup-*. */
  cleanup: boolean;
  actions: string[];
  warnings: string[];
}

/** Decide what remove does with one managed file (pure). `pkg`: the package whose default it may be (for the hint). */
export function fileRemoval(host: string, f: FileFacts, pkg?: string): FileRemoval {
  const r: FileRemoval = { path: f.path, cleanup: false, actions: [], warnings: [] };
  const o = f.original;
  const hasRecord = o.kind === 'recorded' || o.kind === 'recorded-absent';
  if (o.kind === 'recorded') {
    r.restoreFrom = f.path + ORIGINAL_SUFFIX;
    r.actions.push(`restored ${f.path} as it was before kha-deploy's first write`);
  } else if (o.kind === 'recorded-absent') {
    if (f.now !== 'missing') {
      r.delete = true;
      r.actions.push(`removed ${f.path} (there was none before kha-deploy)`);
    }
  } else if (f.now === 'other') {
    // No record and not ours: replaced by hand, or never written by kha-deploy. Left as it is.
    if (o.kind === 'copy' && o.from !== f.path) r.warnings.push(`${f.path} was changed by hand since kha-deploy wrote it: left as it is`);
  } else if (o.kind === 'copy' && o.from !== f.path) {
    r.restoreFrom = o.from;
    r.actions.push(`restored ${f.path} from its oldest backup ${o.from.replace(/^.*\//, '')}, the file from before kha-deploy's first write (this master has no record of it: deployed by an older kha-deploy)`);
  } else if (f.now === 'ours' && o.kind === 'absent') {
    r.delete = true;
    r.actions.push(`removed ${f.path} (kha-deploy created it)`);
  } else if (f.now === 'ours' && o.kind === 'unknown') {
    r.delete = true;
    r.actions.push(`removed ${f.path} (kha-deploy's)`);
    r.warnings.push(
      `no copy of ${f.path} from before kha-deploy's first write is left on ${host} (it was deployed by an older kha-deploy, and its backups were pruned past it): ` +
        `kha-deploy's file was removed, nothing was put back` +
        (pkg ? `. To get the package's default back: apt-get install --reinstall -o Dpkg::Options::=--force-confmiss ${pkg} (Debian/Ubuntu), dnf reinstall ${pkg} (RHEL family)` : ''),
    );
  }
  if (hasRecord || f.backups > 0) {
    r.cleanup = true;
    const what = [hasRecord ? 'its record' : '', f.backups > 0 ? `${f.backups} backup${f.backups === 1 ? '' : 's'}` : ''].filter(Boolean).join(' and ');
    r.actions.push(`removed ${what} of ${f.path}`);
  }
  return r;
}

function fileScript(tag: string, files: readonly FileRemoval[]): string | null {
  const work = files.filter((f) => f.restoreFrom || f.delete || f.cleanup);
  if (work.length === 0) return null;
  const q = shellQuote;
  const lines = [scriptTag('remove', tag, ...work.map((f) => f.path)), 'set -eu', 'kha_t=', `trap '[ -z "$kha_t" ] || rm -f "$kha_t"' EXIT`, "trap 'exit 129' HUP", "trap 'exit 130' INT", "trap 'exit 143' TERM"];
  for (const f of work) {
    const dir = f.path.replace(/\/[^/]+$/, '') || '/';
    const base = f.path.replace(/^.*\//, '');
    if (f.restoreFrom) {
      // Never a copy over the live file: a synced temp copy beside it (cp -p: mode, owner, times), then a rename.
      lines.push(
        `kha_t=${q(dir)}/.${q(base)}.kha-tmp.restore`,
        `cp -p ${q(f.restoreFrom)} "$kha_t"`,
        'sync -- "$kha_t" 2>/dev/null || sync',
        `mv -f "$kha_t" ${q(f.path)}`,
        'kha_t=',
      );
    }
    if (f.delete) lines.push(`rm -f ${q(f.path)}`);
    // The record goes after the file is back, the backups last: a rerun after a crash finds what it needs.
    if (f.cleanup) lines.push(`rm -f ${q(f.path + ORIGINAL_SUFFIX)} ${q(f.path + ORIGINAL_ABSENT_SUFFIX)}`, `rm -f ${q(f.path)}${BACKUP_INFIX}*`);
    // Leftovers of a write or a restore killed with SIGKILL.
    lines.push(`rm -f ${q(dir)}/.${q(base)}.kha-tmp.*`);
  }
  return lines.join('\n');
}

/** systemctl stop (+ reset-failed) and disable, keepalived first; then `ip -o addr` so the run sees where the VIP went. */
export function unitsScript(units: readonly { unit: ManagedUnit; stop: boolean; disable: boolean }[]): string {
  const lines = [scriptTag('remove', 'units', ...units.map((u) => u.unit)), 'set -eu'];
  for (const u of units) {
    const s = shellQuote(`${u.unit}.service`);
    if (u.stop) {
      lines.push(
        `systemctl stop ${s}`,
        `systemctl reset-failed ${s} >/dev/null 2>&1 || :`,
        `if systemctl is-active --quiet ${s}; then echo "${u.unit} is still active after systemctl stop" >&2; exit 3; fi`,
      );
    }
    // Debian's systemd-sysv-install chatters on stderr; the second try shows a real failure.
    if (u.disable) lines.push(`systemctl disable ${s} >/dev/null 2>&1 || systemctl disable ${s}`);
  }
  lines.push(`echo ${ADDR_MARK}`, 'ip -o addr show 2>/dev/null || :');
  return lines.join('\n');
}

const ADDR_MARK = '@@KHA-ADDR';

/** Removes keepalived and haproxy only when nothing else would go with them. */
export function packagesScript(pm: PackageManager, packages: readonly string[]): string {
  const pkgs = packages.map(shellQuote).join(' ');
  const tag = scriptTag('remove', 'packages', pm, ...packages);
  if (pm === 'apt') {
    const keep = packages.map((p) => `-e ${shellQuote(p)}`).join(' ');
    return [
      tag,
      'export DEBIAN_FRONTEND=noninteractive',
      'export NEEDRESTART_MODE=l',
      `kha_s=$(LC_ALL=C apt-get -s purge ${pkgs} 2>&1) || { printf '%s\\n' "$kha_s" >&2; exit 100; }`,
      // The simulation names every package that would go (`Purg NAME [VERSION]`, `Remv …`).
      `kha_x=$(printf '%s\\n' "$kha_s" | sed -n -e 's/^Purg \\([^ ]*\\).*/\\1/p' -e 's/^Remv \\([^ ]*\\).*/\\1/p' | sed 's/:.*//' | grep -vx ${keep} | tr '\\n' ' ') || kha_x=`,
      `if [ -n "$kha_x" ]; then echo "apt-get would also remove: $kha_x(they depend on ${packages.join(' or ')}); nothing was removed" >&2; exit 3; fi`,
      `apt-get purge -y -q -o DPkg::Lock::Timeout=300 ${pkgs}`,
    ].join('\n');
  }
  return [tag, `rpm -e --test ${pkgs} || { echo "other packages depend on ${packages.join(' or ')}; nothing was removed" >&2; exit 3; }`, `${pm} remove -y ${pkgs}`].join('\n');
}

/** Plan the removal of one master from its facts (pure). Throws a plain Error when it cannot be planned (--purge without a package manager). */
export function planRemoval(spec: ClusterSpec, host: HostSpec, facts: HostFacts, rfacts: RemovalFacts, playbook: Playbook, opts: RemoveOptionsPure): RemovePlan {
  const warnings: string[] = [];
  const seconds = (id: Parameters<typeof stepOf>[1]) => stepOf(playbook, id).timeoutSeconds * 1000;

  // Units: keepalived first (on the holder its stop releases the VIP), then haproxy.
  const units = UNIT_ORDER.flatMap((unit) => {
    const u = facts.units[unit];
    if (u.active === '' && u.enabled === '') return []; // not installed
    if (u.enabled === 'masked') {
      if (u.active !== 'inactive') warnings.push(`${unit}.service is masked on ${host.name} but ${u.active}: left alone (unmask it to let kha-deploy stop it)`);
      return [];
    }
    const stop = u.active !== 'inactive' && u.active !== '';
    const disable = ENABLED.has(u.enabled);
    return stop || disable ? [{ unit, stop, disable }] : [];
  });
  const unitActions = units.map((u) => `${u.unit}: ${[u.stop ? (facts.units[u.unit].active === 'failed' ? 'failed state cleared' : 'stopped') : '', u.disable ? 'disabled' : ''].filter(Boolean).join(' and ')}`);
  if (facts.vipOn.length > 0 && units.some((u) => u.unit === 'keepalived' && u.stop)) unitActions.push(`released the VIP ${spec.vip}`);

  const byPath = new Map(rfacts.files.map((f) => [f.path, f]));
  const configs = (['haproxy', 'keepalived'] as const).map((k) => fileRemoval(host.name, byPath.get(playbook.files[k].path)!, playbook.packages[k]));
  const tmpfiles = fileRemoval(host.name, byPath.get(playbook.files.tmpfiles.path)!);
  for (const f of [...configs, tmpfiles]) warnings.push(...f.warnings);

  const steps: RemoveStep[] = [
    { id: 'units', title: 'stop and disable keepalived and haproxy', actions: unitActions, script: units.length ? unitsScript(units) : null, timeoutMs: seconds('units') },
    { id: 'configs', title: 'restore the configs from before kha-deploy', actions: configs.flatMap((f) => f.actions), script: fileScript('configs', configs), timeoutMs: seconds('haproxy-config') },
    { id: 'tmpfiles', title: 'remove the tmpfiles entry', actions: tmpfiles.actions, script: fileScript('tmpfiles', [tmpfiles]), timeoutMs: seconds('rundir') },
    {
      id: 'state',
      title: "remove kha-deploy's state",
      actions: rfacts.stateDir ? [`removed ${STATE_DIR}`] : [],
      script: rfacts.stateDir ? `${scriptTag('remove', 'state', STATE_DIR)}\nrm -rf ${shellQuote(STATE_DIR)}` : null,
      timeoutMs: seconds('rundir'),
    },
  ];
  if (opts.purge) {
    const pkgs = UNIT_ORDER.filter((u) => facts.installed[u]).map((u) => playbook.packages[u]);
    if (pkgs.length > 0 && facts.pkgManager === null) {
      throw new Error(`--purge: no supported package manager (apt-get, dnf, yum) found on ${host.name} (os: ${facts.osId || 'unknown'}); remove ${pkgs.join(' and ')} by hand, or run without --purge`);
    }
    steps.push({
      id: 'packages',
      title: 'remove the keepalived and haproxy packages',
      actions: pkgs.length ? [`removed the packages ${pkgs.join(' and ')} with ${facts.pkgManager === 'apt' ? 'apt-get purge' : `${facts.pkgManager} remove`} (curl stays)`] : [],
      script: pkgs.length ? packagesScript(facts.pkgManager!, pkgs) : null,
      timeoutMs: seconds('packages'),
    });
  }
  return { host: host.name, holdsVip: facts.vipOn.length > 0, steps, warnings };
}

/**
 * The order masters are removed in (pure): those that do not hold the VIP first, lowest priority
 * first (the last ones keepalived would move the VIP to), then the holder(s), so the VIP stays where
 * it is until the very end.
 */
export function removalOrder(spec: ClusterSpec, hosts: readonly string[], holders: readonly string[]): string[] {
  const ranked = [...spec.order].reverse().filter((n) => hosts.includes(n));
  return [...ranked.filter((n) => !holders.includes(n)), ...ranked.filter((n) => holders.includes(n))];
}

// ---------- the report (pure) ----------

export interface HostRemoveReport {
  host: string;
  role: 'primary' | 'backup';
  /** It held the VIP when the run began. */
  heldVip: boolean;
  /** removed: something was changed; converged: nothing was left to remove; failed; not reached (the run stopped before it). */
  result: 'removed' | 'nothing to do' | 'failed' | 'not reached' | 'unreachable';
  steps: { id: RemoveStepId; title: string; status: StepStatus | 'pending'; actions: string[] }[];
  warnings: string[];
}

export interface RemoveReport {
  ok: boolean;
  exitCode: number;
  inventory: string;
  vip: string;
  purge: boolean;
  /** The order the masters were (to be) removed in. */
  order: string[];
  /** Who held the VIP when the run began (from the facts). */
  vipHoldersBefore: string[] | null;
  /** Who held it at the last observation (after each master's units step); null when none was made. */
  vipHolders: string[] | null;
  /** The master whose keepalived stop released the VIP (null: not released by this run). */
  vipReleasedBy: string | null;
  hosts: HostRemoveReport[];
  recap: HostRecap[];
  error?: string;
  durationMs: number;
}

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/** The text an operator reads: what was done per master, then the recap (pure). */
export function removeText(r: RemoveReport): string {
  const out: string[] = [];
  const w = Math.max(...r.recap.map((h) => h.host.length), 4);
  out.push('', 'RECAP');
  for (const h of r.recap) out.push(`  ${h.host.padEnd(w)}  ok=${h.ok}  changed=${h.changed}  unreachable=${h.unreachable}  failed=${h.failed}`);
  out.push(vipSummary(r));
  const changed = r.recap.reduce((n, h) => n + h.changed, 0);
  const secs = `${(r.durationMs / 1000).toFixed(1)}s`;
  if (!r.ok) out.push(`FAILED after ${secs} (exit ${r.exitCode})`);
  else if (changed === 0) out.push(`nothing to remove: kha-deploy's setup is not on ${r.recap.length === 1 ? 'this master' : 'these masters'} (${secs})`);
  else out.push(`removed in ${secs}${r.purge ? ' (packages purged)' : ''}`);
  return out.join('\n');
}

export function vipSummary(r: Pick<RemoveReport, 'vip' | 'vipHolders' | 'vipHoldersBefore' | 'vipReleasedBy'>): string {
  const h = r.vipHolders;
  if (h === null) return `VIP ${r.vip}: not observed`;
  if (h.length === 0) {
    if (r.vipReleasedBy) return `VIP ${r.vip} released: on no master since ${r.vipReleasedBy}, the last one, stopped keepalived`;
    return `VIP ${r.vip} is on no master`;
  }
  return `VIP ${r.vip} is on ${h.join(', ')}${h.length > 1 ? ' (SPLIT BRAIN)' : ''}`;
}

/** One progress line per event, as the removal goes (pure). */
export function removeEventLine(e: RemoveEvent, verbose: boolean): string | undefined {
  switch (e.type) {
    case 'remove-start': {
      const where = e.holders.length > 0 ? `is on ${e.holders.join(', ')}, removed last` : e.limited ? 'is on none of the masters --limit selects' : 'is on no master';
      return `remove ${e.inventory}${e.purge ? ' --purge' : ''}: VIP ${e.vip} ${where}; order ${e.order.join(' → ')}`;
    }
    case 'remove-host':
      return `-- ${e.host} (${e.role}${e.holdsVip ? ', holds the VIP' : ''})`;
    case 'remove-step':
      return [`[${e.host}] ${e.title}: ${e.status}`, ...e.actions.map((a) => `[${e.host}]   - ${a}`)].join('\n');
    case 'remove-host-done':
      return e.changed ? undefined : `[${e.host}] nothing to remove`;
    case 'command':
      return verbose ? `[${e.host}] $ ${e.command.replace(/\n/g, `\n[${e.host}]   `)}` : undefined;
    case 'warning':
      return `warning:${e.host ? ` [${e.host}]` : ''} ${e.message}`;
    default:
      return undefined;
  }
}

// ---------- I/O ----------

export type RemoveEvent =
  | Extract<RunEvent, { type: 'command' | 'warning' }>
  | { type: 'remove-start'; inventory: string; vip: string; purge: boolean; holders: string[]; order: string[]; limited: boolean }
  | { type: 'remove-host'; host: string; role: 'primary' | 'backup'; holdsVip: boolean }
  | { type: 'remove-step'; host: string; step: RemoveStepId; title: string; status: StepStatus; actions: string[] }
  | { type: 'remove-host-done'; host: string; changed: boolean };

export interface RemoveOptions {
  spec: ClusterSpec;
  playbook: Playbook;
  hosts: HostSpec[];
  connect: (host: HostSpec) => Promise<Remote>;
  emit: (e: RemoveEvent) => void;
  purge: boolean;
  signal?: AbortSignal;
}

interface HostState {
  spec: HostSpec;
  remote?: Remote;
  lock?: HeldCommand;
  facts?: HostFacts;
  plan?: RemovePlan;
  statuses: StepStatus[];
  done: Map<RemoveStepId, StepStatus>;
  unreachable: boolean;
  failed: boolean;
  vipAfter?: boolean;
}

export interface RemoveResult {
  report: Omit<RemoveReport, 'durationMs'>;
  error?: unknown;
}

const owner = () => `kha-deploy remove pid ${process.pid} by ${userInfo().username}@${hostname()}`;

/** Take the run lock and read the facts and the removal facts in one held command; the caller releases `held`. */
async function lockAndRead(remote: Remote, h: HostSpec, spec: ClusterSpec, playbook: Playbook, signal?: AbortSignal): Promise<{ held: HeldCommand; facts: HostFacts; rfacts: RemovalFacts }> {
  const inner = [factsScript(spec, playbook), removalFactsScript(playbook)].join('\n');
  let held;
  try {
    held = await remote.hold(lockScript(inner, owner()), READY_MARK, { timeoutMs: FACTS_TIMEOUT_MS, ...(signal ? { signal } : {}) });
  } catch (err) {
    if (err instanceof DeadlineError) throw new DeadlineError(h.name, 'facts', err.timeoutMs, err.seen ?? '', { what: 'taking the run lock and reading facts' });
    throw err;
  }
  if (!('release' in held)) throw lockRefusal(h, held, 'wait for the other run to finish, then remove again (remove never breaks a lock; kha-deploy --break-lock does, when you know that run is gone)');
  try {
    return { held, facts: parseFacts(h.name, held.output, spec.vip), rfacts: parseRemovalFacts(h.name, held.output, playbook) };
  } catch (err) {
    await held.release();
    throw toKhaError(h.name, 'facts', err);
  }
}

/** What to do when a removal step failed or ran past its deadline. */
function stepHint(id: RemoveStepId): string {
  switch (id) {
    case 'units':
      return "read 'journalctl -u keepalived -u haproxy' on the host, fix what it shows and rerun remove (what is done stays done)";
    case 'packages':
      return 'the package manager refused or failed: if other packages depend on keepalived or haproxy, remove them first or run remove without --purge; if another apt/dnf holds the lock, wait and rerun';
    default:
      return 'check the disk and permissions on the host, then rerun remove (what is done stays done)';
  }
}

export async function runRemove(opts: RemoveOptions): Promise<RemoveResult> {
  const { spec, playbook, emit } = opts;
  const selected = spec.order.filter((n) => opts.hosts.some((h) => h.name === n));
  const states = new Map<string, HostState>(
    selected.map((n) => [n, { spec: opts.hosts.find((h) => h.name === n)!, statuses: [], done: new Map(), unreachable: false, failed: false }]),
  );
  const all = () => [...states.values()];
  const interrupted = () => new InterruptedError('interrupted: stopped before the next step; rerun remove to finish (what is done stays done)');
  const checkAbort = () => {
    if (opts.signal?.aborted) throw interrupted();
  };
  // A change in flight gets a moment to finish after Ctrl-C; reads stop at once.
  const grace = graceSignal(opts.signal);
  let order: string[] = selected;
  let holdersBefore: string[] | null = null;
  let releasedBy: string | null = null;
  let error: unknown;
  const markFailure = (s: HostState, err: unknown) => {
    if (err instanceof ConnectError || err instanceof HostKeyError) s.unreachable = true;
    else if (!(err instanceof InterruptedError)) s.failed = true;
  };
  /** `task` on every master at once; when any fails, one error naming every failed master. */
  const settle = async (task: (s: HostState) => Promise<void>, step: string, summary: string) => {
    const list = all();
    const results = await Promise.allSettled(list.map((s) => task(s)));
    const errors = results.flatMap((r, i) => {
      if (r.status === 'fulfilled') return [];
      markFailure(list[i]!, r.reason);
      return [toKhaError(list[i]!.spec.name, step, r.reason)];
    });
    if (errors.length > 0) throw new ManyErrors(errors, `${plural(errors.length, 'master')} failed; ${summary}`);
  };

  try {
    await settle(async (s) => {
      s.remote = await opts.connect(s.spec);
    }, 'connect', 'cannot reach every master: no host was changed (leave a dead master out with --limit)');
    checkAbort();
    await settle(async (s) => {
      const r = await lockAndRead(s.remote!, s.spec, spec, playbook, opts.signal);
      s.lock = r.held;
      s.facts = r.facts;
      try {
        s.plan = planRemoval(spec, s.spec, r.facts, r.rfacts, playbook, { purge: opts.purge });
      } catch (err) {
        throw new HostStepError(s.spec.name, 'plan', err instanceof Error ? err.message : String(err));
      }
    }, 'facts', 'cannot start the removal: no host was changed');
    checkAbort();

    holdersBefore = all().filter((s) => s.plan!.holdsVip).map((s) => s.spec.name);
    order = removalOrder(spec, selected, holdersBefore);
    emit({ type: 'remove-start', inventory: spec.file, vip: spec.vip, purge: opts.purge, holders: holdersBefore, order, limited: selected.length < spec.order.length });
    if (selected.length < spec.order.length && holdersBefore.length > 0) {
      emit({ type: 'warning', message: `--limit: masters outside it still run keepalived: the VIP ${spec.vip} moves to one of them when ${holdersBefore.join(', ')} stops keepalived` });
    }

    for (const name of order) {
      checkAbort();
      const s = states.get(name)!;
      const plan = s.plan!;
      emit({ type: 'remove-host', host: name, role: name === spec.primary ? 'primary' : 'backup', holdsVip: plan.holdsVip });
      for (const message of plan.warnings) emit({ type: 'warning', host: name, message: maskSecrets(message) });
      let changed = false;
      for (const step of plan.steps) {
        checkAbort();
        if (step.script === null) {
          s.statuses.push('ok');
          s.done.set(step.id, 'ok');
          continue;
        }
        let res;
        try {
          res = await s.remote!.run(step.script, { label: step.title, timeoutMs: step.timeoutMs, signal: grace.signal });
        } catch (err) {
          markFailure(s, err);
          // A step cut short by Ctrl-C stays pending: a rerun does it.
          if (!(err instanceof InterruptedError)) s.done.set(step.id, 'failed');
          if (err instanceof DeadlineError) throw new DeadlineError(name, step.id, err.timeoutMs, maskSecrets(err.seen ?? ''), { what: step.title, hint: stepHint(step.id) });
          throw err;
        }
        if (res.code !== 0) {
          s.failed = true;
          s.statuses.push('failed');
          s.done.set(step.id, 'failed');
          emit({ type: 'remove-step', host: name, step: step.id, title: step.title, status: 'failed', actions: [] });
          throw new HostStepError(name, step.id, `${step.title} failed (exit ${res.code})${name === order.at(-1) ? '' : '; the masters after it were not touched'}`, {
            seen: maskSecrets(tail([res.stderr.trim(), step.id === 'units' ? '' : res.stdout.trim()].filter(Boolean).join('\n'))),
            hint: stepHint(step.id),
          });
        }
        if (step.id === 'units') {
          const at = res.stdout.split('\n').indexOf(ADDR_MARK);
          s.vipAfter = at >= 0 && interfacesHolding(res.stdout.split('\n').slice(at + 1).join('\n'), spec.vip, name).length > 0;
          if (plan.holdsVip && !s.vipAfter) releasedBy = name;
          if (s.vipAfter) emit({ type: 'warning', host: name, message: `the VIP ${spec.vip} is still on ${name} after keepalived stopped: something other than keepalived put it there; remove it by hand (ip addr del)` });
        }
        changed = true;
        s.statuses.push('changed');
        s.done.set(step.id, 'changed');
        emit({ type: 'remove-step', host: name, step: step.id, title: step.title, status: 'changed', actions: step.actions });
      }
      emit({ type: 'remove-host-done', host: name, changed });
    }
  } catch (err) {
    error = runError(err, opts.signal, interrupted);
  } finally {
    grace.dispose();
    await Promise.allSettled(all().map((s) => s.lock?.release()));
    await Promise.allSettled(all().map((s) => s.remote?.close()));
  }

  const recap = order.map<HostRecap>((n) => {
    const s = states.get(n)!;
    return {
      host: n,
      ok: s.statuses.filter((x) => x === 'ok').length,
      changed: s.statuses.filter((x) => x === 'changed').length,
      unreachable: s.unreachable ? 1 : 0,
      failed: s.failed ? Math.max(1, s.statuses.filter((x) => x === 'failed').length) : 0,
      commands: s.remote?.commandCount ?? 0,
    };
  });
  const hosts = order.map<HostRemoveReport>((n) => {
    const s = states.get(n)!;
    const steps = (s.plan?.steps ?? []).map((st) => ({ id: st.id, title: st.title, status: s.done.get(st.id) ?? ('pending' as const), actions: s.done.get(st.id) === 'changed' ? st.actions : [] }));
    const result: HostRemoveReport['result'] = s.unreachable
      ? 'unreachable'
      : s.failed
        ? 'failed'
        : s.plan === undefined || steps.some((st) => st.status === 'pending')
          ? 'not reached'
          : steps.some((st) => st.status === 'changed')
            ? 'removed'
            : 'nothing to do';
    return { host: n, role: n === spec.primary ? 'primary' : 'backup', heldVip: s.plan?.holdsVip ?? false, result, steps, warnings: (s.plan?.warnings ?? []).map(maskSecrets) };
  });
  // Where the VIP is now: each master's own view after its units step, else its facts.
  const observed = all().filter((s) => s.facts);
  const vipHolders = observed.length === 0 ? null : observed.filter((s) => (s.vipAfter ?? s.facts!.vipOn.length > 0)).map((s) => s.spec.name);
  return {
    report: {
      ok: error === undefined,
      exitCode: error === undefined ? 0 : error instanceof KhaError ? error.exitCode : 1,
      inventory: spec.file,
      vip: spec.vip,
      purge: opts.purge,
      order,
      vipHoldersBefore: holdersBefore,
      vipHolders,
      vipReleasedBy: vipHolders !== null && vipHolders.length === 0 ? releasedBy : null,
      hosts,
      recap,
    },
    ...(error === undefined ? {} : { error }),
  };
}

function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
