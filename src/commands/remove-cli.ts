// Thin I/O for `kha-deploy remove [--purge]`: load and select (exit 2 before any host), read the
// credentials, run the removal under Ctrl-C handling with one progress line per event, then the
// recap (text) or ONE JSON document on stdout (error text also on stderr).
import { EXIT_HOST_FAILED, KhaError } from '../errors.js';
import { loadPlaybook } from '../playbook.js';
import { formatError } from '../report/format-error.js';
import { connector, fail, loadTargets, withInterrupt, type CommonArgs, type Targets } from './common.js';
import { removeEventLine, removeText, runRemove, type RemoveEvent, type RemoveReport } from './remove.js';

export interface RemoveArgs extends CommonArgs {
  purge: boolean;
}

export async function runRemoveCommand(args: RemoveArgs): Promise<number> {
  const started = Date.now();
  const json = args.output === 'json';
  const out = (s: string) => process.stdout.write(`${s}\n`);
  let targets: Targets;
  try {
    targets = await loadTargets(args);
  } catch (err) {
    return fail(err, json);
  }
  const { spec, hosts, creds } = targets;
  const emit = (e: RemoveEvent) => {
    if (json) return;
    const line = removeEventLine(e, args.verbose);
    if (line !== undefined) out(line);
  };
  const abort = new AbortController();
  let result;
  try {
    result = await withInterrupt(abort, () =>
      runRemove({
        spec,
        playbook: loadPlaybook(),
        hosts,
        purge: args.purge === true,
        emit,
        signal: abort.signal,
        connect: connector(args, creds, (host, command) => emit({ type: 'command', host, command })),
      }),
    );
  } catch (err) {
    return fail(err, json);
  }
  const errorText = result.error === undefined ? undefined : formatError(result.error);
  const code = result.error === undefined ? 0 : result.error instanceof KhaError ? result.error.exitCode : EXIT_HOST_FAILED;
  const report: RemoveReport = { ...result.report, exitCode: code, ...(errorText ? { error: errorText } : {}), durationMs: Date.now() - started };
  if (json) {
    out(JSON.stringify(report, null, 2));
    if (errorText) process.stderr.write(`${errorText}\n`);
  } else {
    if (errorText) process.stderr.write(`\n${errorText}\n`);
    out(removeText(report));
  }
  return code;
}
