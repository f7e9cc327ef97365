// Command line: parse flags, load and validate the inventory (exit 2 before any host is touched),
// wire the SSH connector and the UI to the runner, print the recap, exit with the documented code.
import { homedir } from 'node:os';
import { join } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { EXIT_HOST_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, KhaError, UsageError } from './errors.js';
import { loadInventory } from './inventory/load.js';
import { loadPlaybook, type Playbook } from './playbook.js';
import { formatError } from './report/format-error.js';
import { listrUi } from './report/listr-ui.js';
import { recapText, summarize } from './report/recap.js';
import { textUi } from './report/text-ui.js';
import { runRollout } from './runner/rollout.js';
import { readSecret } from './secrets.js';
import { checkKeyFile } from './ssh/keys.js';
import { connect } from './ssh/session.js';
import type { HostSpec, RunEvent } from './types.js';

export const EXIT_CODES_HELP = `Exit codes:
  0    converged: every master is configured, the VIP is on the primary, kubectl answers through it
  1    a host step or gate failed (the message names host, step, what the host showed, what to do)
  2    usage or inventory error, found before any host was contacted
  130  interrupted (Ctrl-C); no file is left half-written, rerun to converge`;

const ENV_HELP = `Environment:
  KHA_SSH_PASSPHRASE  passphrase of an encrypted ansible_ssh_private_key_file
  KHA_BECOME_PASS     sudo password for ansible_become hosts without NOPASSWD (or --ask-become-pass)
  SSH_AUTH_SOCK       ssh-agent used when no key file is set`;

interface DeployArgs {
  inventory: string;
  knownHosts: string;
  acceptNewHostKeys: boolean;
  limit?: string;
  output: 'text' | 'json';
  verbose: boolean;
  askBecomePass: boolean;
  gateTimeout?: number;
  breakLock: boolean;
}

export async function main(argv: string[]): Promise<number> {
  let args: DeployArgs | undefined;
  const parser = yargs(argv)
    .scriptName('kha-deploy')
    .usage('Usage: kha-deploy [deploy] -i INVENTORY [options]\n\nMake a Kubernetes control plane highly available: keepalived + haproxy on every master, one master at a time, primary first, gated on the VIP.')
    .command(
      ['deploy', '$0'],
      'install and configure keepalived + haproxy on every master (default command)',
      (y) =>
        y
          .option('inventory', { alias: 'i', type: 'string', demandOption: true, describe: 'Ansible-style INI inventory ([masters], [kube_master] or [kube_control_plane])' })
          .option('known-hosts', { type: 'string', default: join(homedir(), '.ssh', 'known_hosts'), describe: 'OpenSSH known_hosts file used to verify host keys' })
          .option('accept-new-host-keys', { type: 'boolean', default: false, describe: 'trust and append keys of hosts not yet in known_hosts (like StrictHostKeyChecking=accept-new); a changed key is still refused' })
          .option('limit', { type: 'string', describe: 'only these masters, comma-separated NAME[,NAME]; the others are not contacted' })
          .option('output', { type: 'string', choices: ['text', 'json'] as const, default: 'text' as const, describe: 'text (task tree on a TTY, lines otherwise) or one JSON document on stdout' })
          .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'show every remote command' })
          .option('gate-timeout', { type: 'number', describe: 'seconds each gate waits for the VIP and kubectl before failing (default: the playbook\'s, 60-90 s)' })
          .option('ask-become-pass', { type: 'boolean', default: false, describe: 'prompt for the sudo password (never taken from the command line)' })
          .option('break-lock', { type: 'boolean', default: false, describe: 'end a run lock left on a master by another run (who held it is shown); only when you know that run is gone' }),
      (a) => {
        args = a as unknown as DeployArgs;
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
  if (!args) return EXIT_OK; // --help or --version was printed
  return deploy(args);
}

async function deploy(args: DeployArgs): Promise<number> {
  const started = Date.now();
  const json = args.output === 'json';
  const out = (s: string) => process.stdout.write(`${s}\n`);
  let spec;
  let hosts: HostSpec[];
  try {
    spec = await loadInventory(args.inventory);
    hosts = selectHosts(spec.hosts, args.limit);
  } catch (err) {
    return fail(err, json);
  }
  let playbook = loadPlaybook();
  if (args.gateTimeout !== undefined) {
    if (!Number.isInteger(args.gateTimeout) || args.gateTimeout < 1 || args.gateTimeout > 3600) {
      return fail(new UsageError(`--gate-timeout ${args.gateTimeout}: expected whole seconds from 1 to 3600`), json);
    }
    playbook = withGateTimeout(playbook, args.gateTimeout);
  }
  let becomePassword: string | undefined;
  let passphrase: string | undefined;
  try {
    becomePassword = await readSecret('KHA_BECOME_PASS', args.askBecomePass ? 'sudo password (become): ' : undefined);
    passphrase = await readSecret('KHA_SSH_PASSPHRASE', undefined);
    if (passphrase === undefined && !process.env.SSH_AUTH_SOCK && process.stdin.isTTY && (await anyKeyEncrypted(hosts))) {
      passphrase = await readSecret('KHA_SSH_PASSPHRASE', 'passphrase for the SSH private key: ');
    }
  } catch (err) {
    return fail(err, json);
  }

  const tty = !json && process.stdout.isTTY === true && (process.stdout.columns ?? 0) >= 40;
  const ui = tty ? listrUi(spec.order.filter((n) => hosts.some((h) => h.name === n)), spec.primary) : undefined;
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
    connect: (h) =>
      connect({
        host: h.name,
        address: h.address,
        port: h.port,
        user: h.user,
        ...(h.privateKeyFile ? { privateKeyFile: h.privateKeyFile } : {}),
        ...(passphrase ? { passphrase } : {}),
        ...(process.env.SSH_AUTH_SOCK ? { agentSocket: process.env.SSH_AUTH_SOCK } : {}),
        become: h.become,
        ...(becomePassword ? { becomePassword } : {}),
        knownHostsFile: args.knownHosts,
        acceptNewHostKeys: args.acceptNewHostKeys,
        onCommand: (command) => emit({ type: 'command', host: h.name, command }),
      }),
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

/** An encrypted key file without a passphrase: ask once on the terminal rather than fail on every host. */
async function anyKeyEncrypted(hosts: HostSpec[]): Promise<boolean> {
  const files = [...new Set(hosts.flatMap((h) => (h.privateKeyFile ? [h.privateKeyFile] : [])))];
  const checks = await Promise.all(files.map((f) => checkKeyFile(f)));
  return checks.some((c) => !c.ok && c.reason === 'encrypted');
}

function withGateTimeout(playbook: Playbook, seconds: number): Playbook {
  const gates = Object.fromEntries(Object.entries(playbook.gates).map(([role, g]) => [role, { ...g, timeoutSeconds: seconds }]));
  return { ...playbook, gates: gates as Playbook['gates'] };
}

function selectHosts(all: HostSpec[], limit: string | undefined): HostSpec[] {
  if (limit === undefined) return all;
  const names = limit.split(',').map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((n) => !all.some((h) => h.name === n));
  if (names.length === 0 || unknown.length > 0) {
    throw new UsageError(`--limit ${limit}: ${names.length === 0 ? 'no host named' : `unknown master(s) ${unknown.join(', ')}`}`, {
      hint: `the inventory's masters are ${all.map((h) => h.name).join(', ')}`,
    });
  }
  return all.filter((h) => names.includes(h.name));
}

function fail(err: unknown, json: boolean): number {
  const code = err instanceof KhaError ? err.exitCode : EXIT_HOST_FAILED;
  const text = formatError(err);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, exitCode: code, error: text }, null, 2)}\n`);
  process.stderr.write(`${text}\n`);
  return code;
}

export async function run(): Promise<void> {
  try {
    process.exitCode = await main(hideBin(process.argv));
  } catch (err) {
    process.stderr.write(`${formatError(err)}\n`);
    process.exitCode = err instanceof KhaError ? err.exitCode : EXIT_HOST_FAILED;
  }
}
