// Command line: parse flags, load and validate the inventory (exit 2 before any host is touched),
// wire the SSH connector and the UI to the runner, print the recap, exit with the documented code.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EXIT_HOST_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, KhaError, UsageError } from './errors.js';
import { loadPlaybook, type Playbook } from './playbook.js';
import { formatError } from './report/format-error.js';
import { listrUi } from './report/listr-ui.js';
import { recapText, summarize } from './report/recap.js';
import { textUi } from './report/text-ui.js';
import { runRollout } from './runner/rollout.js';
import { commonOptions, connector, fail, loadTargets, type CommonArgs, type Targets } from './commands/common.js';
// The other commands' modules load only when they run: a deploy (the no-op rerun) starts faster.
import type { VerifyArgs } from './commands/verify-cli.js';
import type { RemoveArgs } from './commands/remove-cli.js';
import type { RunEvent } from './types.js';

export const EXIT_CODES_HELP = `Exit codes:
  0    converged: every master is configured, the VIP is on the primary, kubectl answers through it
       (check: a deploy would change nothing; status: every master healthy; verify: every check
       passed; verify --failover: the drill ran and left the cluster as it found it; remove: every
       master is clean, also when there was nothing to remove)
  1    a host step or gate failed (the message names host, step, what the host showed, what to do)
       (status: degraded, the reasons are printed; verify: a check failed; verify --failover: the
       cluster was not healthy to begin with (nothing changed), or the drill failed: its figures,
       the cause and whether the cluster was put back are printed)
  2    usage or inventory error, found before any host was contacted
  3    check: a deploy would change something (the changes are printed)
  130  interrupted (Ctrl-C); no file is left half-written, rerun to converge (verify --failover:
       what the drill stopped was started again before exit)`;

const ENV_HELP = `Environment:
  KHA_SSH_PASSPHRASE  passphrase of an encrypted ansible_ssh_private_key_file
  KHA_BECOME_PASS     sudo password for ansible_become hosts without NOPASSWD (or --ask-become-pass)
  SSH_AUTH_SOCK       ssh-agent used when no key file is set`;

interface DeployArgs extends CommonArgs {
  gateTimeout?: number;
  breakLock: boolean;
  check: boolean;
}

type Command =
  | { name: 'deploy'; args: DeployArgs }
  | { name: 'check'; args: CommonArgs }
  | { name: 'status'; args: CommonArgs }
  | { name: 'verify'; args: VerifyArgs }
  | { name: 'remove'; args: RemoveArgs };

export async function main(argv: string[]): Promise<number> {
  let cmd: Command | undefined;
  const parser = yargs(argv)
    .scriptName('kha-deploy')
    .usage('Usage: kha-deploy [deploy|check|status|verify|remove] -i INVENTORY [options]\n\nMake a Kubernetes control plane highly available: keepalived + haproxy on every master, one master at a time, primary first, gated on the VIP.')
    .command(
      ['deploy', '$0'],
      'install and configure keepalived + haproxy on every master (default command)',
      (y) =>
        commonOptions(y)
          .option('gate-timeout', { type: 'number', describe: 'seconds each gate waits for the VIP and kubectl before failing (default: the playbook\'s, 60-90 s)' })
          .option('break-lock', { type: 'boolean', default: false, describe: 'end a run lock left on a master by another run (who held it is shown); only when you know that run is gone' })
          .option('check', { type: 'boolean', default: false, describe: 'change nothing: show what a deploy would do (same as kha-deploy check)' }),
      (a) => {
        cmd = { name: 'deploy', args: a as unknown as DeployArgs };
      },
    )
    .command(
      'check',
      'show what a deploy would do on every master (packages, file diffs, units, order); changes nothing. Exit 0 converged, 3 changes pending',
      (y) => commonOptions(y),
      (a) => {
        cmd = { name: 'check', args: a as unknown as CommonArgs };
      },
    )
    .command(
      'status',
      'per master: keepalived/haproxy, VRRP state, VIP holder, haproxy\'s view of the apiservers, drift. Read-only. Exit 0 healthy, 1 degraded',
      (y) => commonOptions(y),
      (a) => {
        cmd = { name: 'status', args: a as unknown as CommonArgs };
      },
    )
    .command(
      'verify',
      'the checks of a deploy, now: VIP on the expected master, kubectl through it from every master, every haproxy serving. --failover: a measured failover drill that leaves the cluster as found',
      (y) =>
        commonOptions(y)
          .option('failover', { type: 'boolean', default: false, describe: 'drill: stop keepalived, then haproxy, on the VIP holder while probing the API through the VIP; time the VIP move and the API gap both ways; start them again. Needs every master (no --limit) and a healthy cluster' })
          .option('gate-timeout', { type: 'number', describe: 'seconds the checks may wait for the VIP and kubectl (default 15); with --failover, for each VIP move and the API (default 30, 60 for the way back)' }),
      (a) => {
        cmd = { name: 'verify', args: a as unknown as VerifyArgs };
      },
    )
    .command(
      'remove',
      'undo kha-deploy: backups first, the VIP holder last; stop and disable the units, put back the configs found before the first deploy (or remove ours), remove the tmpfiles entry and kha-deploy\'s state. --purge also removes the packages. Idempotent',
      (y) =>
        commonOptions(y).option('purge', {
          type: 'boolean',
          default: false,
          describe: 'also remove the keepalived and haproxy packages (apt-get purge, dnf/yum remove); curl stays',
        }),
      (a) => {
        cmd = { name: 'remove', args: a as unknown as RemoveArgs };
      },
    )
    .epilog(`${EXIT_CODES_HELP}\n\n${ENV_HELP}`)
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
    .exitProcess(false)
    // yargs' default handler prints the whole help for any error: show usage only for usage errors.
    .fail((msg, err) => {
      if (err) throw err;
      throw new UsageError(msg);
    });

  try {
    await parser.parseAsync();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${await parser.getHelp()}\n\n${formatError(err)}\n`);
      return EXIT_USAGE;
    }
    throw err;
  }
  if (!cmd) return EXIT_OK; // --help or --version was printed
  if (cmd.name === 'check' || (cmd.name === 'deploy' && cmd.args.check)) {
    if (cmd.name === 'deploy' && (cmd.args.breakLock || cmd.args.gateTimeout !== undefined)) {
      return fail(new UsageError('--check changes nothing: it takes no --break-lock or --gate-timeout'), cmd.args.output === 'json');
    }
    return (await import('./commands/check-cli.js')).runCheckCommand(cmd.args);
  }
  if (cmd.name === 'status') return (await import('./commands/status-cli.js')).runStatusCommand(cmd.args);
  if (cmd.name === 'verify') return (await import('./commands/verify-cli.js')).runVerifyCommand(cmd.args);
  if (cmd.name === 'remove') return (await import('./commands/remove-cli.js')).runRemoveCommand(cmd.args);
  return deploy(cmd.args);
}

async function deploy(args: DeployArgs): Promise<number> {
  const started = Date.now();
  const json = args.output === 'json';
  const out = (s: string) => process.stdout.write(`${s}\n`);
  let playbook = loadPlaybook();
  if (args.gateTimeout !== undefined) {
    if (!Number.isInteger(args.gateTimeout) || args.gateTimeout < 1 || args.gateTimeout > 3600) {
      return fail(new UsageError(`--gate-timeout ${args.gateTimeout}: expected whole seconds from 1 to 3600`), json);
    }
    playbook = withGateTimeout(playbook, args.gateTimeout);
  }
  let targets: Targets;
  try {
    targets = await loadTargets(args);
  } catch (err) {
    return fail(err, json);
  }
  const { spec, hosts, creds } = targets;

  const tty = !json && process.stdout.isTTY === true && (process.stdout.columns ?? 0) >= 40;
  const ui = tty ? listrUi(spec.primary) : undefined;
  const lines = textUi(out, args.verbose);
  // Warnings are kept for the JSON document, and on a terminal printed again under the task tree (which redraws over lines).
  const warnings: { host?: string; message: string }[] = [];
  const emit = (e: RunEvent) => {
    if (e.type === 'warning') warnings.push({ ...(e.host ? { host: e.host } : {}), message: e.message });
    if (json) return;
    if (ui && e.type !== 'inventory' && !(e.type === 'command' && args.verbose)) ui.emit(e);
    else lines(e);
  };
  emit({ type: 'inventory', spec });
  for (const message of spec.warnings ?? []) emit({ type: 'warning', message });

  const abort = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) process.exit(EXIT_INTERRUPTED);
    process.stderr.write('\ninterrupt: stopping; a change in progress gets 1 s to finish, then it is ended on the host (Ctrl-C again to quit now)\n');
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const result = await runRollout({
    spec,
    playbook,
    hosts,
    signal: abort.signal,
    breakLock: args.breakLock,
    emit,
    connect: connector(args, creds, (host, command) => emit({ type: 'command', host, command })),
  });
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);

  const code = result.error === undefined ? EXIT_OK : result.error instanceof KhaError ? result.error.exitCode : EXIT_HOST_FAILED;
  await ui?.finish(result.error !== undefined);
  const errorText = result.error === undefined ? undefined : formatError(result.error);
  const summary = { ...summarize(spec, result, code, Date.now() - started, errorText), warnings };
  if (ui) for (const w of warnings) lines({ type: 'warning', ...w });
  if (json) {
    out(JSON.stringify(summary, null, 2));
    if (errorText) process.stderr.write(`${errorText}\n`);
  } else {
    if (errorText) process.stderr.write(`\n${errorText}\n`);
    out(recapText(summary));
  }
  return code;
}

function withGateTimeout(playbook: Playbook, seconds: number): Playbook {
  const gates = Object.fromEntries(Object.entries(playbook.gates).map(([role, g]) => [role, { ...g, timeoutSeconds: seconds }]));
  return { ...playbook, gates: gates as Playbook['gates'] };
}

export async function run(): Promise<void> {
  try {
    process.exitCode = await main(hideBin(process.argv));
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    process.exitCode = err instanceof KhaError ? err.exitCode : EXIT_HOST_FAILED;
  }
}
