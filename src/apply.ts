// Executes one host's planned steps over its Remote. Files are replaced only after the new content
// arrived intact and validated on the host; the old file is kept as a timestamped backup; a unit
// that does not come up after a change gets its previous config back.
import { HostStepError } from './errors.js';
import { journalTail } from './journal.js';
import { redact } from './report/redact.js';
import { scriptTag, shellQuote } from './shell.js';
import type { ManagedUnit, Operation, PlannedStep, Remote, RemoteResult, RunEvent, StepStatus } from './types.js';
import { sha256Hex } from './plan.js';

/** Exit code our write script uses when the host's validator rejected the new file. */
const EXIT_INVALID = 65;
const BACKUP_INFIX = '.kha-backup-';
const STATE_DIR = '/var/lib/kha-deploy';

export interface ApplyContext {
  remote: Remote;
  emit: (e: RunEvent) => void;
  /** Backups to keep per file (the playbook decides). */
  keepBackups: number;
  secrets: readonly string[];
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

/** POSIX sh that writes stdin to a temp file beside `path`, checks it arrived whole, validates, backs up and renames. */
export function writeFileScript(op: Extract<Operation, { op: 'write-file' }>, keepBackups: number): string {
  const p = shellQuote(op.path);
  const dir = shellQuote(op.path.replace(/\/[^/]+$/, '') || '/');
  const base = op.path.replace(/^.*\//, '');
  const hash = sha256Hex(op.content);
  const validate = op.validate ? op.validate.split('{file}').join('"$tmp"') : '';
  return [
    scriptTag('write', op.path),
    'set -eu',
    `mkdir -p ${dir}`,
    // Leftovers of a run killed with SIGKILL are dot-files nobody reads; remove them first.
    `rm -f ${dir}/.${shellQuote(base)}.kha-tmp.*`,
    `tmp=$(mktemp ${dir}/.${shellQuote(base)}.kha-tmp.XXXXXX)`,
    `trap 'rm -f "$tmp"' EXIT HUP INT TERM`,
    'cat > "$tmp"',
    // A dropped connection truncates stdin: never install a file that did not arrive whole.
    `echo ${hash}' *'"$tmp" | sha256sum -c --status || { echo 'content arrived incomplete' >&2; exit 66; }`,
    `chmod ${shellQuote(op.mode)} "$tmp"`,
    ...(validate ? [`if ! out=$(${validate} 2>&1); then printf '%s\\n' "$out" >&2; exit ${EXIT_INVALID}; fi`] : []),
    'backup=',
    // Nanoseconds keep two runs within one second apart; names sort in time order for pruning.
    `if [ -e ${p} ]; then backup=${p}${BACKUP_INFIX}$(date -u +%Y%m%dT%H%M%S.%NZ); cp -p ${p} "$backup"; fi`,
    `mv -f "$tmp" ${p}`,
    'trap - EXIT HUP INT TERM',
    `ls -1d ${p}${BACKUP_INFIX}* 2>/dev/null | sort -r | tail -n +${keepBackups + 1} | while read -r old; do rm -f "$old"; done`,
    'echo "backup=$backup"',
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
    lines.push(
      `workers() { pgrep -P "$(systemctl show -p MainPID --value ${u})" 2>/dev/null | sort | tr '\\n' ' '; }`,
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
    lines.push(`mkdir -p ${STATE_DIR}`, `printf '%s\\n' ${shellQuote(op.recordApplied)} > ${STATE_DIR}/${op.unit}.applied`);
  }
  return lines.join('\n');
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

  private async op(step: PlannedStep, op: Operation): Promise<void> {
    const { remote, secrets } = this.ctx;
    const host = remote.host;
    if (op.op === 'run') {
      const res = await remote.run(op.script, { label: op.description });
      if (res.code !== 0) {
        throw new HostStepError(host, step.id, `${op.description} failed (exit ${res.code})`, {
          seen: redact(seenOf(res), secrets),
          hint:
            step.id === 'packages'
              ? 'the package manager failed; nothing else was changed on this host. Check its repositories and proxy (try the same install by hand), then rerun'
              : 'fix what the host reported and rerun',
        });
      }
      return;
    }
    if (op.op === 'write-file') {
      const res = await remote.run(writeFileScript(op, this.ctx.keepBackups), { stdin: op.content, label: `write ${op.path}` });
      if (res.code === EXIT_INVALID) {
        throw new HostStepError(host, step.id, `the rendered ${op.path} failed validation on the host; the old file stays in place and the service was not touched`, {
          seen: redact(seenOf(res), [...secrets, ...(op.secrets ?? [])]),
          hint: 'the validator output above names the line; fix the inventory value or the template in playbooks/templates and rerun',
        });
      }
      if (res.code !== 0) {
        throw new HostStepError(host, step.id, `could not write ${op.path} (exit ${res.code}); the old file stays in place`, {
          seen: redact(seenOf(res), [...secrets, ...(op.secrets ?? [])]),
          hint: 'check the disk and permissions on the host, then rerun',
        });
      }
      const m = /^backup=(.*)$/m.exec(res.stdout);
      this.replaced.push({ path: op.path, backup: m?.[1] ? m[1] : null, unit: op.unit });
      return;
    }
    const res = await remote.run(serviceScript(op), { label: `systemctl ${op.action} ${op.unit}` });
    if (res.code === 0) return;
    const journal = await journalTail(remote, op.unit, 20);
    const seen = redact(`${seenOf(res)}\n--- journalctl -u ${op.unit}:\n${journal}`, secrets);
    const restored = await this.rollback(op.unit);
    throw new HostStepError(host, step.id, `${op.unit} did not come up after ${op.action}` + (restored ? `; the previous config was restored and ${op.unit} restarted with it` : ''), {
      seen,
      hint: `read the journal lines above ('journalctl -u ${op.unit}' on ${host}); fix the cause and rerun`,
    });
  }

  /** Put back the previous config of `unit` written in this run and restart the unit with it. */
  private async rollback(unit: ManagedUnit): Promise<boolean> {
    const file = [...this.replaced].reverse().find((r) => r.unit === unit && r.backup);
    if (!file?.backup) return false;
    const script = [
      scriptTag('rollback', unit, file.path),
      'set -eu',
      `cp -p ${shellQuote(file.backup)} ${shellQuote(file.path)}`,
      `systemctl restart ${shellQuote(`${unit}.service`)}`,
      `rm -f ${STATE_DIR}/${unit}.applied`,
    ].join('\n');
    const res = await this.ctx.remote.run(script, { label: `restore ${file.path} and restart ${unit}` });
    return res.code === 0;
  }
}
