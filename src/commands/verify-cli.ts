// Thin I/O for `kha-deploy verify [--failover]`: the gates through the read-only frame, or the
// failover drill with its own Ctrl-C handling (the first one restores, a second one quits and
// leaves the restore to the dead-man timers on the hosts).
import { EXIT_INTERRUPTED, UsageError } from '../errors.js';
import { loadPlaybook } from '../playbook.js';
import { formatError } from '../report/format-error.js';
import { textUi } from '../report/text-ui.js';
import { DrillFailed, runDrill } from '../drill/run.js';
import { drillText } from '../drill/figures.js';
import type { RunEvent } from '../types.js';
import { connector, fail, loadTargets, runReadOnly, type CommonArgs, type Targets } from './common.js';
import { VERIFY_TIMEOUT_MS, verifyGates, verifyText } from './verify.js';

export interface VerifyArgs extends CommonArgs {
  failover: boolean;
  gateTimeout?: number;
}

export async function runVerifyCommand(args: VerifyArgs): Promise<number> {
  const json = args.output === 'json';
  if (args.gateTimeout !== undefined && (!Number.isInteger(args.gateTimeout) || args.gateTimeout < 1 || args.gateTimeout > 3600)) {
    return fail(new UsageError(`--gate-timeout ${args.gateTimeout}: expected whole seconds from 1 to 3600`), json);
  }
  if (!args.failover) {
    return runReadOnly(args, (ctx) => verifyGates(ctx, args.gateTimeout !== undefined ? args.gateTimeout * 1000 : VERIFY_TIMEOUT_MS), verifyText);
  }
  if (args.limit !== undefined) return fail(new UsageError('verify --failover drills the whole cluster: it takes no --limit'), json);
  let targets: Targets;
  try {
    targets = await loadTargets(args);
  } catch (err) {
    return fail(err, json);
  }
  const { spec, hosts, creds } = targets;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  const lines = textUi(out, args.verbose);
  const emit = json ? () => undefined : (e: RunEvent) => lines(e);
  for (const message of spec.warnings ?? []) emit({ type: 'warning', message });
  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    if (++interrupts > 1) {
      process.stderr.write('\ninterrupt: quitting now; a unit the drill stopped is started again by its timer on the host (kha-drill-restore-*.timer)\n');
      process.exit(EXIT_INTERRUPTED);
    }
    process.stderr.write('\ninterrupt: stopping the drill and putting back what it stopped (Ctrl-C again to quit now)\n');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // --gate-timeout bounds each wait of the drill too: the VIP's move, its way back, the API answering.
    const limits = args.gateTimeout !== undefined ? { moveMs: args.gateTimeout * 1000, backMs: args.gateTimeout * 1000, apiMs: args.gateTimeout * 1000 } : {};
    const report = await runDrill({ spec, hosts, playbook: loadPlaybook(), emit, limits, signal: abort.signal, connect: connector(args, creds, (host, command) => emit({ type: 'command', host, command })) });
    out(json ? JSON.stringify(report, null, 2) : `\n${drillText(report)}`);
    return report.exitCode;
  } catch (err) {
    if (!(err instanceof DrillFailed)) return fail(err, json);
    if (json) out(JSON.stringify({ ...err.report, error: formatError(err.reason) }, null, 2));
    else out(`\n${drillText(err.report)}`);
    process.stderr.write(`\n${formatError(err.reason)}\n`);
    return err.exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
