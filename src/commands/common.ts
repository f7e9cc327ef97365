// What every command shares: the connection options (one definition for deploy, check and status),
// picking the masters (--limit), reading the secrets, and the SSH connector built from them.
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { EXIT_HOST_FAILED, KhaError, UsageError } from '../errors.js';
import { formatError } from '../report/format-error.js';
import { readSecret } from '../secrets.js';
import { checkKeyFile } from '../ssh/keys.js';
import { resolveRoute, type RouteHost, type SshRoute } from '../ssh/route.js';
import { JumpPool, connect } from '../ssh/session.js';
import { configFiles, readContext } from '../ssh/ssh-config.js';
import { loadInventory } from '../inventory/load.js';
import { loadPlaybook } from '../playbook.js';
import { textUi } from '../report/text-ui.js';
import type { ClusterSpec, HostSpec, Remote, RunContext, RunEvent } from '../types.js';

export interface CommonArgs {
  /** Absent: ANSIBLE_INVENTORY, else ansible.cfg's [defaults] inventory (loadInventory decides). */
  inventory?: string;
  /** Absent: ssh_config's UserKnownHostsFile for the host, else ~/.ssh/known_hosts (and known_hosts2). */
  knownHosts?: string;
  /** OpenSSH client config: a file, `none`, or absent for ~/.ssh/config then /etc/ssh/ssh_config (as ssh). */
  sshConfig?: string;
  acceptNewHostKeys: boolean;
  limit?: string;
  output: 'text' | 'json';
  verbose: boolean;
  askBecomePass: boolean;
}

/** The options every command takes: -i, --known-hosts, --ssh-config, --accept-new-host-keys, --limit, --output, -v, --ask-become-pass. */
export function commonOptions<T>(y: Argv<T>) {
  return y
    .option('inventory', {
      alias: 'i',
      type: 'string',
      describe: 'Ansible inventory: INI or YAML file, or a directory (default: $ANSIBLE_INVENTORY, else inventory= in ansible.cfg)',
    })
    .option('known-hosts', {
      type: 'string',
      describe: `OpenSSH known_hosts file used to verify host keys (default: UserKnownHostsFile from ssh_config, else ${join(homedir(), '.ssh', 'known_hosts')}); /etc/ssh/ssh_known_hosts is read too`,
    })
    .option('ssh-config', {
      type: 'string',
      describe: 'OpenSSH client config for HostName, User, Port, IdentityFile, ProxyJump, … (default: ~/.ssh/config, then /etc/ssh/ssh_config; none: read no ssh_config); inventory variables win over it',
    })
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
  /** How each master is reached (ssh_config, jump hosts), resolved before any connection. */
  routes?: Map<string, SshRoute>;
}

export type SshArgs = Pick<CommonArgs, 'acceptNewHostKeys'> & Partial<Pick<CommonArgs, 'knownHosts' | 'sshConfig'>>;

/**
 * The inventory side of a master for route resolution. Which connection values the inventory set
 * (they win over ssh_config) is read from HostSpec.sshExplicit when the inventory provides it;
 * otherwise a value equal to kha-deploy's default (ansible_host = the name, port 22, user root)
 * counts as unset, so ssh_config may fill it.
 */
export function routeHost(h: HostSpec): RouteHost {
  const given = h.sshExplicit;
  return {
    name: h.name,
    address: h.address,
    port: h.port,
    user: h.user,
    ...(h.privateKeyFile !== undefined ? { privateKeyFile: h.privateKeyFile } : {}),
    ...(h.sshCommonArgs !== undefined ? { sshCommonArgs: h.sshCommonArgs } : {}),
    explicit: given ?? { address: h.address !== h.name, port: h.port !== 22, user: h.user !== 'root' },
  };
}

/**
 * Resolve how every master is reached: inventory variables, then ssh_config (--ssh-config), then
 * defaults; jump hosts from ansible_ssh_common_args or ssh_config. A refusal is a UsageError (exit 2)
 * before any host is contacted. Warnings (StrictHostKeyChecking no ignored, …) are returned once each.
 */
export function resolveRoutes(args: SshArgs, hosts: HostSpec[], opts: { home?: string; globalKnownHosts?: string[] } = {}): { routes: Map<string, SshRoute>; warnings: string[] } {
  const ctx = readContext(opts.home ?? homedir());
  const files = configFiles(args.sshConfig, ctx.home);
  const routes = new Map<string, SshRoute>();
  const warnings = new Set<string>();
  for (const h of hosts) {
    const r = resolveRoute(routeHost(h), {
      files,
      ctx,
      ...(args.knownHosts !== undefined ? { knownHosts: args.knownHosts } : {}),
      acceptNewHostKeys: args.acceptNewHostKeys,
      ...(opts.globalKnownHosts ? { globalKnownHosts: opts.globalKnownHosts } : {}),
    });
    routes.set(h.name, r);
    r.warnings.forEach((w) => warnings.add(w));
  }
  return { routes, warnings: [...warnings] };
}

/**
 * The sudo password and key passphrase (from the environment, or asked on the terminal), and how each
 * master is reached (resolveRoutes: exit 2 here, before any host is contacted, for what cannot be honoured).
 */
export async function readCredentials(args: Pick<CommonArgs, 'askBecomePass'> & Partial<SshArgs>, hosts: HostSpec[]): Promise<Credentials> {
  const { routes, warnings } = resolveRoutes({ acceptNewHostKeys: args.acceptNewHostKeys ?? false, ...pick(args) }, hosts);
  for (const w of warnings) process.stderr.write(`warning: ssh: ${w}\n`);
  const becomePassword = await readSecret('KHA_BECOME_PASS', args.askBecomePass ? 'sudo password (become): ' : undefined);
  let passphrase = await readSecret('KHA_SSH_PASSPHRASE', undefined);
  if (passphrase === undefined && !process.env.SSH_AUTH_SOCK && process.stdin.isTTY && (await anyKeyEncrypted(routes))) {
    passphrase = await readSecret('KHA_SSH_PASSPHRASE', 'passphrase for the SSH private key: ');
  }
  return { ...(becomePassword ? { becomePassword } : {}), ...(passphrase ? { passphrase } : {}), routes };
}

function pick(args: Partial<SshArgs>): Partial<SshArgs> {
  return { ...(args.knownHosts !== undefined ? { knownHosts: args.knownHosts } : {}), ...(args.sshConfig !== undefined ? { sshConfig: args.sshConfig } : {}) };
}

/** An encrypted key file without a passphrase: ask once on the terminal rather than fail on every host. */
async function anyKeyEncrypted(routes: Map<string, SshRoute>): Promise<boolean> {
  const files = [...new Set([...routes.values()].flatMap((r) => [r.target, ...r.jumps].flatMap((e) => (e.privateKeyFile ? [e.privateKeyFile] : []))))];
  const checks = await Promise.all(files.map((f) => checkKeyFile(f)));
  return checks.some((c) => !c.ok && c.reason === 'encrypted');
}

/**
 * The SSH connector for one master, as every command uses it: the route readCredentials resolved
 * (resolved here when absent), jump host connections shared by the masters of this connector (one run).
 */
export function connector(
  args: SshArgs,
  creds: Credentials,
  onCommand: (host: string, command: string) => void,
  opts: { home?: string; globalKnownHosts?: string[] } = {},
): (h: HostSpec) => Promise<Remote> {
  const pool = new JumpPool();
  return async (h) => {
    const route = creds.routes?.get(h.name) ?? resolveRoutes(args, [h], opts).routes.get(h.name)!;
    const t = route.target;
    return connect({
      host: h.name,
      address: t.address,
      port: t.port,
      user: t.user,
      ...(t.privateKeyFile ? { privateKeyFile: t.privateKeyFile } : {}),
      ...(t.identitiesOnly ? { identitiesOnly: true } : {}),
      ...(creds.passphrase ? { passphrase: creds.passphrase } : {}),
      ...(process.env.SSH_AUTH_SOCK ? { agentSocket: process.env.SSH_AUTH_SOCK } : {}),
      ...(opts.home !== undefined ? { homeDir: opts.home } : {}),
      become: h.become,
      ...(creds.becomePassword ? { becomePassword: creds.becomePassword } : {}),
      knownHostsFile: t.knownHostsFile,
      extraKnownHostsFiles: t.extraKnownHostsFiles,
      acceptNewHostKeys: t.acceptNewHostKeys,
      ...(route.jumps.length > 0 ? { jumps: route.jumps, jumpPool: pool } : {}),
      onCommand: (command) => onCommand(h.name, command),
    });
  };
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

/** What every command starts from: the inventory, the masters selected by --limit, the secrets to reach them. */
export interface Targets {
  spec: ClusterSpec;
  hosts: HostSpec[];
  creds: Credentials;
}

/** Load and validate the inventory, select the masters, read the secrets: any problem is thrown before a host is contacted. */
export async function loadTargets(args: CommonArgs): Promise<Targets> {
  const spec = await loadInventory(args.inventory);
  const hosts = selectHosts(spec.hosts, args.limit);
  return { spec, hosts, creds: await readCredentials(args, hosts) };
}

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
  let targets: Targets;
  try {
    targets = await loadTargets(args);
  } catch (err) {
    return fail(err, json);
  }
  const { spec, hosts, creds } = targets;
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
