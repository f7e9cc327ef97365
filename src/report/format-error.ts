// The one place that turns typed errors into operator-facing text.
import { relative } from 'node:path';
import { HostKeyError, HostStepError, InventoryError, KhaError, ManyErrors } from '../errors.js';
import { maskSecrets } from './redact.js';

function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith('..') ? rel : file;
}

function indent(text: string, prefix = '    '): string {
  return text
    .replace(/\s+$/, '')
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}

/** Multi-line message for one error; secrets are masked. */
export function formatError(err: unknown): string {
  return maskSecrets(formatUnredacted(err));
}

function formatUnredacted(err: unknown): string {
  if (err instanceof ManyErrors) {
    return [`error: ${err.message}`, ...err.errors.map(formatUnredacted)].join('\n');
  }
  if (err instanceof InventoryError) {
    const file = displayPath(err.file);
    const lines = err.problems.map((p) => {
      const where = p.line === undefined ? file : `${file}:${p.line}`;
      const what = p.variable ? ` ${p.variable}:` : '';
      return `${where}:${what} ${p.message}` + (p.hint ? `\n    hint: ${p.hint}` : '');
    });
    const n = err.problems.length;
    return `error: inventory ${file} has ${n} problem${n === 1 ? '' : 's'} (no host was contacted)\n${lines.join('\n')}`;
  }
  if (err instanceof HostKeyError) {
    const head =
      err.kind === 'changed'
        ? `error: [${err.host}] HOST KEY CHANGED for ${err.endpoint} — refusing to connect`
        : err.kind === 'revoked'
          ? `error: [${err.host}] host key for ${err.endpoint} is REVOKED in known_hosts — refusing to connect`
          : `error: [${err.host}] unknown host key for ${err.endpoint} — refusing to connect`;
    const parts = [head, `    presented: ${err.fingerprint}`];
    for (const k of err.knownFingerprints) parts.push(`    known:     ${k}`);
    if (err.hint) parts.push(`    what to do: ${err.hint}`);
    return parts.join('\n');
  }
  if (err instanceof HostStepError) {
    const parts = [`error: [${err.host}] ${err.step}: ${err.message}`];
    if (err.seen && err.seen.trim()) parts.push('  what the host showed:', indent(err.seen));
    if (err.hint) parts.push(`  what to do: ${err.hint}`);
    const cause = err.cause instanceof Error ? err.cause.message : undefined;
    if (cause && !err.message.includes(cause)) parts.push(`  cause: ${cause}`);
    return parts.join('\n');
  }
  if (err instanceof KhaError) {
    return `error: ${err.message}` + (err.hint ? `\n  what to do: ${err.hint}` : '');
  }
  if (err instanceof Error) {
    // An unexpected error is a bug in kha-deploy: show the stack so it can be reported.
    return `error: internal error: ${err.stack ?? err.message}\n  please report this together with the command line you ran.`;
  }
  return `error: ${String(err)}`;
}
