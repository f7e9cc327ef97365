// Executes one host's planned steps over its Remote. Files are replaced only after the new content
// arrived intact and validated on the host; the old file is kept as a timestamped backup; a unit
// that does not come up after a change gets its previous config back.
import { DeadlineError, HostStepError } from './errors.js';
import { STATE_DIR, appliedStatePath } from './facts.js';
import { journalTail } from './journal.js';
import { maskSecrets } from './report/redact.js';
import { scriptTag, shellQuote } from './shell.js';
import type { ManagedUnit, Operation, PlannedStep, Remote, RemoteResult, RunEvent, RunOptions, StepStatus } from './types.js';
import { sha256Hex } from './plan.js';

/** Exit code our write script uses when the host's validator rejected the new file. */
const EXIT_INVALID = 65;
export const BACKUP_INFIX = '.kha-backup-';
/**
 * The record of what a managed file was before kha-deploy's first write to it, kept beside it so that
 * `kha-deploy remove` can put the host back: `PATH.kha-original` is a copy (cp -p: mode, owner and
 * times too) of the file that was there, `PATH.kha-original-absent` an empty marker saying there was
 * none. Made by the write script on the first write only (when neither exists), so it costs no extra
 * command and nothing on a no-op rerun, and later writes never touch it.
 */
export const ORIGINAL_SUFFIX = '.kha-original';
export const ORIGINAL_ABSENT_SUFFIX = '.kha-original-absent';
/** A line every packaged template renders ("# Rendered by kha-deploy from playbooks/templates/…"): the file is ours. */
export const RENDERED_MARK = 'Rendered by kha-deploy';
/** A stdout line `@@KHA-WARN text` of a run op becomes a warning event: the op succeeded, with a caveat. */
const WARN_PREFIX = '@@KHA-WARN ';
/** Bounds of the calls that explain or undo a failure: they must not hang a run that already failed. */
const JOURNAL_TIMEOUT_MS = 15_000;
const ROLLBACK_TIMEOUT_MS = 30_000;

export interface ApplyContext {
  remote: Remote;
  emit: (e: RunEvent) => void;
  /** Backups to keep per file (the playbook decides). */
  keepBackups: number;
  /** Aborted (Ctrl-C): the remote command in flight is ended and its run() rejects with InterruptedError. */
  signal?: AbortSignal;
}

/** A file this run replaced on the host, and where its previous version went (null: there was none). */
interface Replaced {
  path: string;
  backup: string | null;
  unit: ManagedUnit | undefined;
}


function tail(text: string, lines = 15): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

function seenOf(res: RemoteResult): string {
  return tail([res.stderr.trim(), res.stdout.trim()].filter(Boolean).join('\n'));
}

/** Directory and base name of an absolute path. */
function splitPath(path: string): { dir: string; base: string } {
  return { dir: path.replace(/\/[^/]+$/, '') || '/', base: path.replace(/^.*\//, '') };
}

/**
 * Script lines that make `$tmp` a fresh temp file beside `path` and remove it on any exit. A signal
 * ends the script through `exit` so that the EXIT trap runs (a bare cleanup trap on INT would let
 * the script carry on after it).
 */
function tempFileLines(path: string): string[] {
  const { dir, base } = splitPath(path);
  const prefix = `${shellQuote(dir)}/.${shellQuote(base)}.kha-tmp.`;
  return [
    'tmp=',
    `trap '[ -z "$tmp" ] || rm -f "$tmp"' EXIT`,
    "trap 'exit 129' HUP",
    "trap 'exit 130' INT",
    "trap 'exit 143' TERM",
    // Leftovers of a run killed with SIGKILL are dot-files nobody reads; remove them first.
    `rm -f ${prefix}*`,
    `tmp=$(mktemp ${prefix}XXXXXX)`,
  ];
}

/** The temp name of the original's copy: it matches tempFileLines' leftover pattern, so a crash leaves nothing for long. */
function originalTmp(path: string): string {
  const { dir, base } = splitPath(path);
  return `${shellQuote(dir)}/.${shellQuote(base)}.kha-tmp.original`;
}

/** Script lines that flush `$tmp` to disk and rename it onto `path`: after a crash the file is whole, old or new. */
function installTempLines(path: string): string[] {
  return [
    // sync takes file arguments from coreutils 8.24 on; older ones (and busybox) sync everything.
    'sync -- "$tmp" 2>/dev/null || sync',
    `mv -f "$tmp" ${shellQuote(path)}`,
    'tmp=',
  ];
}

/**
 * POSIX sh defining `kha_original FILE KEEP`: what FILE was before kha-deploy's first write to it, for a
 * FILE without a record (ORIGINAL_SUFFIX / ORIGINAL_ABSENT_SUFFIX). It prints one line:
 *   `copy SRC`  SRC holds that file (FILE itself when it is not ours, or its oldest backup)
 *   `absent`    there was no file
 *   `unknown`   it cannot be told (kha-deploy's own backups were pruned past it)
 * A file is ours when its name starts with `kha-deploy` or it carries RENDERED_MARK. Without a record
 * and without backups, a file that is ours was created by kha-deploy (overwriting one leaves a backup),
 * and one that is not ours is the original. With backups (a host deployed by a kha-deploy that kept no
 * record), the oldest backup is the original unless it is ours; if it is ours and fewer than KEEP
 * backups exist, nothing was pruned, so kha-deploy's first write created the file: `absent`.
 * The write script uses it to make the record on the first write after an upgrade; `kha-deploy remove`
 * uses it on hosts that still have no record.
 */
export function originalInferenceLines(): string[] {
  return [
    `kha_ours() { case \${1##*/} in kha-deploy*) return 0 ;; esac; grep -qF ${shellQuote(RENDERED_MARK)} "$1" 2>/dev/null; }`,
    'kha_original() {',
    `  kha_on=$(ls -1d "$1"${BACKUP_INFIX}* 2>/dev/null | wc -l | tr -d ' ')`,
    '  if [ "$kha_on" -gt 0 ]; then',
    `    kha_oo=$(ls -1d "$1"${BACKUP_INFIX}* 2>/dev/null | sort | head -n 1)`,
    '    if ! kha_ours "$kha_oo"; then echo "copy $kha_oo"; elif [ "$kha_on" -lt "$2" ]; then echo absent; else echo unknown; fi',
    '  elif [ -e "$1" ]; then',
    '    if kha_ours "$1"; then echo absent; else echo "copy $1"; fi',
    '  else',
    '    echo absent',
    '  fi',
    '}',
  ];
}

/** POSIX sh that writes stdin to a temp file beside `path`, checks it arrived whole, validates, keeps the original aside (first write), backs up and renames. */
export function writeFileScript(op: Extract<Operation, { op: 'write-file' }>, keepBackups: number): string {
  const p = shellQuote(op.path);
  const hash = sha256Hex(op.content);
  const validate = op.validate ? op.validate.split('{file}').join('"$tmp"') : '';
  return [
    scriptTag('write', op.path),
    'set -eu',
    `mkdir -p ${shellQuote(splitPath(op.path).dir)}`,
    ...tempFileLines(op.path),
    'cat > "$tmp"',
    // A dropped connection truncates stdin: never install a file that did not arrive whole.
    `echo ${hash}' *'"$tmp" | sha256sum -c --status || { echo 'content arrived incomplete' >&2; exit 66; }`,
    `chmod ${shellQuote(op.mode)} "$tmp"`,
    ...(validate ? [`if ! out=$(${validate} 2>&1); then printf '%s\\n' "$out" >&2; exit ${EXIT_INVALID}; fi`] : []),
    // The first write keeps what was there before (see ORIGINAL_SUFFIX), through a synced temp copy and
    // a rename: a crash leaves no half record (the leftover temp name is removed by the next write).
    `if [ ! -e ${shellQuote(op.path + ORIGINAL_SUFFIX)} ] && [ ! -e ${shellQuote(op.path + ORIGINAL_ABSENT_SUFFIX)} ]; then`,
    ...originalInferenceLines().map((l) => `  ${l}`),
    `  kha_w=$(kha_original ${p} ${keepBackups})`,
    '  case $kha_w in',
    `    absent) : > ${shellQuote(op.path + ORIGINAL_ABSENT_SUFFIX)} ;;`,
    `    'copy '*) cp -p "\${kha_w#copy }" ${originalTmp(op.path)}; sync -- ${originalTmp(op.path)} 2>/dev/null || sync; mv -f ${originalTmp(op.path)} ${shellQuote(op.path + ORIGINAL_SUFFIX)} ;;`,
    '  esac',
    'fi',
    'backup=',
    // Nanoseconds keep two runs within one second apart; names sort in time order for pruning.
    `if [ -e ${p} ]; then backup=${p}${BACKUP_INFIX}$(date -u +%Y%m%dT%H%M%S.%NZ); cp -p ${p} "$backup"; fi`,
    ...installTempLines(op.path),
    `ls -1d ${p}${BACKUP_INFIX}* 2>/dev/null | sort -r | tail -n +${keepBackups + 1} | while read -r old; do rm -f "$old"; done`,
    'echo "backup=$backup"',
  ].join('\n');
}

/**
 * POSIX sh that puts `backup` back as `path` (temp copy beside it, fsync, rename: never a copy over
 * the live file), forgets the config `unit` had loaded, and restarts `unit` with the restored file.
 */
export function rollbackScript(path: string, backup: string, unit: ManagedUnit): string {
  return [
    scriptTag('rollback', unit, path),
    'set -eu',
    ...tempFileLines(path),
    // -p: the backup kept the old file's mode, owner and times.
    `cp -p ${shellQuote(backup)} "$tmp"`,
    ...installTempLines(path),
    // Before the restart: if it fails, the state file must not claim the unit loaded the new config.
    `rm -f ${shellQuote(appliedStatePath(unit))}`,
    `systemctl restart ${shellQuote(`${unit}.service`)}`,
  ].join('\n');
}

/** POSIX sh that enables/starts/reloads a unit, confirms it stays active, then records the config it loaded. */
export function serviceScript(op: Extract<Operation, { op: 'service' }>): string {
  const u = shellQuote(`${op.unit}.service`);
  const action = {
    'enable-start': `systemctl enable ${u} >/dev/null 2>&1 || systemctl enable ${u}; systemctl start ${u}`,
    reload: `systemctl reload ${u}`,
    restart: `systemctl restart ${u}`,
    enable: `systemctl enable ${u}`,
  }[op.action];
  const lines = [scriptTag('service', op.unit, op.action), 'set -eu'];
  if (op.unit === 'haproxy' && op.action === 'reload') {
    // A reload whose new process cannot bind leaves the old worker serving the old config while
    // systemd still says active: require a new worker (pgrep, where present) to call it done.
    // systemd < 230 (CentOS 7 has 219) has no `show --value`: read its MainPID=N line.
    lines.push(
      `workers() { kha_pid=$(systemctl show -p MainPID ${u} | sed -n 's/^MainPID=//p'); [ "\${kha_pid:-0}" != 0 ] || return 0; pgrep -P "$kha_pid" 2>/dev/null | sort | tr '\\n' ' '; }`,
      'before=$(workers)',
      action,
      'if command -v pgrep >/dev/null; then',
      '  i=0; while [ "$(workers)" = "$before" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done',
      `  if [ "$(workers)" = "$before" ]; then echo "haproxy kept its old worker: the new configuration was not loaded" >&2; exit 3; fi`,
      'fi',
    );
  } else {
    lines.push(action);
  }
  if (op.action !== 'enable') {
    // A unit can die right after start/reload (bad bind, missing /run/haproxy): look twice.
    lines.push(`sleep 0.5`, `systemctl is-active --quiet ${u} || { echo "${op.unit} is not active after ${op.action}" >&2; exit 3; }`);
  }
  if (op.recordApplied) {
    lines.push(`mkdir -p ${shellQuote(STATE_DIR)}`, `printf '%s\\n' ${shellQuote(op.recordApplied)} > ${shellQuote(appliedStatePath(op.unit))}`);
  }
  return lines.join('\n');
}

/** What an op does, in the words of progress lines and errors. */
function describe(op: Operation): string {
  if (op.op === 'run') return op.description;
  if (op.op === 'write-file') return `write ${op.path}`;
  return `systemctl ${op.action} ${op.unit}`;
}

/** What to do when an op of `step` ran past its deadline. */
function deadlineHint(step: PlannedStep, op: Operation): string {
  if (step.id === 'packages') {
    return 'another apt/dnf/yum may hold the package lock (unattended upgrades, a manual install), or a mirror does not answer; check both on the host, then rerun (or raise timeout_seconds of the packages step)';
  }
  if (op.op === 'service') {
    return `${op.unit} did not settle: read 'journalctl -u ${op.unit}' on the host, fix what it shows and rerun`;
  }
  if (op.op === 'write-file') return 'the validator or the disk did not answer; check the host, then rerun';
  return 'see what it printed above: it may wait on a lock, a prompt or the network; fix that on the host and rerun';
}

export class HostApplier {
  private readonly replaced: Replaced[] = [];
  constructor(private readonly ctx: ApplyContext) {}

  /** Runs every op of the step; emits step-start/step-end; throws HostStepError on failure. */
  async step(step: PlannedStep): Promise<StepStatus> {
    const { emit, remote } = this.ctx;
    emit({ type: 'step-start', host: remote.host, step: step.id, title: step.title });
    if (step.ops.length === 0) {
      emit({ type: 'step-end', host: remote.host, step: step.id, title: step.title, status: 'ok' });
      return 'ok';
    }
    try {
      for (const op of step.ops) await this.op(step, op);
    } catch (err) {
      emit({ type: 'step-end', host: remote.host, step: step.id, title: step.title, status: 'failed' });
      throw err;
    }
    emit({ type: 'step-end', host: remote.host, step: step.id, title: step.title, status: 'changed', detail: step.reason });
    return 'changed';
  }

  /** remote.run under the step's deadline; a deadline is reported as this step's, naming the op. */
  private async run(step: PlannedStep, op: Operation, script: string, stdin?: string): Promise<RemoteResult> {
    const { remote, signal } = this.ctx;
    const what = describe(op);
    try {
      return await remote.run(script, { label: what, timeoutMs: step.timeoutMs, ...(stdin !== undefined ? { stdin } : {}), ...(signal ? { signal } : {}) });
    } catch (err) {
      if (!(err instanceof DeadlineError)) throw err;
      throw new DeadlineError(remote.host, step.id, err.timeoutMs, maskSecrets(err.seen ?? ''), { what, hint: deadlineHint(step, op) });
    }
  }

  private async op(step: PlannedStep, op: Operation): Promise<void> {
    const { remote } = this.ctx;
    const host = remote.host;
    if (op.op === 'run') {
      const res = await this.run(step, op, op.script);
      for (const line of res.stdout.split('\n')) {
        if (line.startsWith(WARN_PREFIX)) this.ctx.emit({ type: 'warning', host, message: maskSecrets(line.slice(WARN_PREFIX.length).trim()) });
      }
      if (res.code !== 0) {
        throw new HostStepError(host, step.id, `${op.description} failed (exit ${res.code})`, {
          seen: maskSecrets(seenOf(res)),
          hint:
            step.id === 'packages'
              ? 'the package manager failed; nothing else was changed on this host. Check its repositories and proxy (try the same install by hand), then rerun'
              : 'fix what the host reported and rerun',
        });
      }
      return;
    }
    if (op.op === 'write-file') {
      const res = await this.run(step, op, writeFileScript(op, this.ctx.keepBackups), op.content);
      if (res.code === EXIT_INVALID) {
        throw new HostStepError(host, step.id, `the rendered ${op.path} failed validation on the host; the old file stays in place and the service was not touched`, {
          seen: maskSecrets(seenOf(res)),
          hint: 'the validator output above names the line; fix the inventory value or the template in playbooks/templates and rerun',
        });
      }
      if (res.code !== 0) {
        throw new HostStepError(host, step.id, `could not write ${op.path} (exit ${res.code}); the old file stays in place`, {
          seen: maskSecrets(seenOf(res)),
          hint: 'check the disk and permissions on the host, then rerun',
        });
      }
      const m = /^backup=(.*)$/m.exec(res.stdout);
      this.replaced.push({ path: op.path, backup: m?.[1] ? m[1] : null, unit: op.unit });
      return;
    }
    const res = await this.run(step, op, serviceScript(op));
    if (res.code === 0) return;
    const journal = await journalTail(remote, op.unit, 20, this.bounded(JOURNAL_TIMEOUT_MS));
    const seen = maskSecrets(`${seenOf(res)}\n--- journalctl -u ${op.unit}:\n${journal}`);
    const restored = await this.rollback(op.unit);
    throw new HostStepError(host, step.id, `${op.unit} did not come up after ${op.action}` + (restored ? `; the previous config was restored and ${op.unit} restarted with it` : ''), {
      seen,
      hint: `read the journal lines above ('journalctl -u ${op.unit}' on ${host}); fix the cause and rerun`,
    });
  }

  private bounded(timeoutMs: number): RunOptions {
    return { timeoutMs, ...(this.ctx.signal ? { signal: this.ctx.signal } : {}) };
  }

  /** Put back the previous config of `unit` written in this run and restart the unit with it; false when that did not happen. */
  private async rollback(unit: ManagedUnit): Promise<boolean> {
    const file = [...this.replaced].reverse().find((r) => r.unit === unit && r.backup);
    if (!file?.backup) return false;
    try {
      const res = await this.ctx.remote.run(rollbackScript(file.path, file.backup, unit), { label: `restore ${file.path} and restart ${unit}`, ...this.bounded(ROLLBACK_TIMEOUT_MS) });
      return res.code === 0;
    } catch {
      // The failure being reported matters more; the message then says nothing was restored.
      return false;
    }
  }
}
