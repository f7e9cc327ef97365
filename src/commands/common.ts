// What every command shares: the connection options (one definition for deploy, check and status),
// picking the masters (--limit), reading the secrets, and the SSH connector built from them.
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { EXIT_HOST_FAILED, KhaError, UsageError } from '../errors.js';
import { formatError } from '../report/format-error.js';
import { readSecret } from '../secrets.js';
import { checkKeyFile } from '../ssh/keys.js';
import { connect } from '../ssh/session.js';
import { loadInventory } from '../inventory/load.js';
import { loadPlaybook } from '../playbook.js';
import { textUi } from '../report/text-ui.js';
import type { ClusterSpec, HostSpec, Remote, RunContext, RunEvent } from '../types.js';

export interface CommonArgs {
  inventory: string;
  knownHosts: string;
  acceptNewHostKeys: boolean;
  limit?: string;
  output: 'text' | 'json';
  verbose: boolean;
  askBecomePass: boolean;
}

/** The options every command takes: -i, --known-hosts, --accept-new-host-keys, --limit, --output, -v, --ask-become-pass. */
export function commonOptions<T>(y: Argv<T>) {
  return y
    .option('inventory', { alias: 'i', type: 'string', demandOption: true, describe: 'Ansible-style INI inventory ([masters], [kube_master] or [kube_control_plane])' })
    .option('known-hosts', { type: 'string', default: join(homedir(), '.ssh', 'known_hosts'), describe: 'OpenSSH known_hosts file used to verify host keys' })
    .option('accept-new-host-keys', { type: 'boolean', default: false, describe: 'trust and append keys of hosts not yet in known_hosts (like StrictHostKeyChecking=accept-new); a changed key is still refused' })
    .option('limit', { type: 'string', describe: 'only these masters, comma-separated NAME[,NAME]; the others are not contacted' })
    .option('output', { type: 'string', choices: ['text', 'json'] as const, default: 'text' as const, describe: 'text (task tree or table on a TTY, lines otherwise) or one JSON document on stdout' })
    .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'show every remote command' })
    .option('ask-become-pass', { type: 'boolean', default: false, describe: 'prompt for the sudo password (never taken from the command line)' });
}

export function selectHosts(all: HostSpec[], limit: string | undefined): HostSpec[] {
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

export interface Credentials {
  becomePassword?: string;
  passphrase?: string;
}

/** The sudo password and key passphrase: from the environment, or asked on the terminal. */
export async function readCredentials(args: Pick<CommonArgs, 'askBecomePass'>, hosts: HostSpec[]): Promise<Credentials> {
  const becomePassword = await readSecret('KHA_BECOME_PASS', args.askBecomePass ? 'sudo password (become): ' : undefined);
  let passphrase = await readSecret('KHA_SSH_PASSPHRASE', undefined);
  if (passphrase === undefined && !process.env.SSH_AUTH_SOCK && process.stdin.isTTY && (await anyKeyEncrypted(hosts))) {
    passphrase = await readSecret('KHA_SSH_PASSPHRASE', 'passphrase for the SSH private key: ');
  }
  return { ...(becomePassword ? { becomePassword } : {}), ...(passphrase ? { passphrase } : {}) };
}

/** An encrypted key file without a passphrase: ask once on the terminal rather than fail on every host. */
async function anyKeyEncrypted(hosts: HostSpec[]): Promise<boolean> {
  const files = [...new Set(hosts.flatMap((h) => (h.privateKeyFile ? [h.privateKeyFile] : [])))];
  const checks = await Promise.all(files.map((f) => checkKeyFile(f)));
  return checks.some((c) => !c.ok && c.reason === 'encrypted');
}

/** The SSH connector for one master, as every command uses it. */
export function connector(
  args: Pick<CommonArgs, 'knownHosts' | 'acceptNewHostKeys'>,
  creds: Credentials,
  onCommand: (host: string, command: string) => void,
): (h: HostSpec) => Promise<Remote> {
  return (h) =>
    connect({
      host: h.name,
      address: h.address,
      port: h.port,
      user: h.user,
      ...(h.privateKeyFile ? { privateKeyFile: h.privateKeyFile } : {}),
      ...(creds.passphrase ? { passphrase: creds.passphrase } : {}),
      ...(process.env.SSH_AUTH_SOCK ? { agentSocket: process.env.SSH_AUTH_SOCK } : {}),
      become: h.become,
      ...(creds.becomePassword ? { becomePassword: creds.becomePassword } : {}),
      knownHostsFile: args.knownHosts,
      acceptNewHostKeys: args.acceptNewHostKeys,
      onCommand: (command) => onCommand(h.name, command),
    });
}

/** Report an error that ends a command: formatted once (formatError), on stderr; with --output json also as the document on stdout. */
export function fail(err: unknown, json: boolean): number {
  const code = err instanceof KhaError ? err.exitCode : EXIT_HOST_FAILED;
  const text = formatError(err);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, exitCode: code, error: text }, null, 2)}\n`);
  process.stderr.write(`${text}\n`);
  return code;
}

/** Ctrl-C / SIGTERM abort `controller` while `work` runs (a second one quits at once). */
export async function withInterrupt<T>(controller: AbortController, work: () => Promise<T>): Promise<T> {
  let n = 0;
  const onSignal = () => {
    if (++n > 1) process.exit(130);
    process.stderr.write('\ninterrupt: stopping (Ctrl-C again to quit now)\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** What a read-only command (check, status) gathers with, once the inventory and credentials are read. */
/** What a read-only command (check, status) gathers with: a RunContext whose Ctrl-C signal always exists. */
export type ReadOnlyContext = RunContext & { signal: AbortSignal };

/**
 * The shared frame of check and status: load and select (exit 2 before any host), read credentials,
 * gather under Ctrl-C handling, print the text or ONE JSON document, return the report's exit code.
 */
export async function runReadOnly<R extends { exitCode: number }>(
  args: CommonArgs,
  work: (ctx: ReadOnlyContext) => Promise<R>,
  text: (report: R) => string,
): Promise<number> {
  const json = args.output === 'json';
  const out = (s: string) => process.stdout.write(`${s}\n`);
  let spec: ClusterSpec;
  let hosts: HostSpec[];
  let creds: Credentials;
  try {
    spec = await loadInventory(args.inventory);
    hosts = selectHosts(spec.hosts, args.limit);
    creds = await readCredentials(args, hosts);
  } catch (err) {
    return fail(err, json);
  }
  const lines = textUi(out, args.verbose);
  // Only -v's commands are shown while gathering: the report comes whole at the end.
  const emit = json ? () => undefined : (e: RunEvent) => (e.type === 'command' ? lines(e) : undefined);
  const abort = new AbortController();
  try {
    const report = await withInterrupt(abort, () =>
      work({ spec, hosts, playbook: loadPlaybook(), emit, signal: abort.signal, connect: connector(args, creds, (host, command) => emit({ type: 'command', host, command })) }),
    );
    out(json ? JSON.stringify(report, null, 2) : text(report));
    return report.exitCode;
  } catch (err) {
    return fail(err, json);
  }
}
