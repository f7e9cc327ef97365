// How to reach one master: the inventory's connection variables, then ssh_config for what they leave
// open, then kha-deploy's defaults; and the jump hosts in front of it (ansible_ssh_common_args first,
// as Ansible's -o options come before ssh_config; then ssh_config's ProxyJump/ProxyCommand), each
// hop resolved through ssh_config the same way. Synchronous and done for every master before any
// connection, so a refusal (an unsupported ProxyCommand, a bad Port) is exit 2 with nothing touched.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { endpointOf } from './host-keys.js';
import { ProxyError, parseCommonArgs, parseProxyCommand, parseProxyJump, type HopSpec } from './proxy.js';
import { evaluateSshConfig, expandTokens, type ConfigFile, type HostConfig, type Located, type ReadContext } from './ssh-config.js';

/** Where and how to connect one SSH hop (a master or a jump host). */
export interface SshEndpoint {
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
  /** IdentitiesOnly yes: offer the key file only, not every key of ssh-agent. */
  identitiesOnly: boolean;
  /** The user's known_hosts (read first; accept-new appends here). */
  knownHostsFile: string;
  /** Read too, never written: further UserKnownHostsFile entries, GlobalKnownHostsFile. */
  extraKnownHostsFiles: string[];
  acceptNewHostKeys: boolean;
  /** `user@address:port`, for messages. */
  label: string;
}

export interface SshRoute {
  target: SshEndpoint;
  /** Jump hosts, the first one connected to first; empty for a direct connection. */
  jumps: SshEndpoint[];
  warnings: string[];
}

/** The inventory side of one master. `explicit` says which values the inventory (or ansible.cfg) set. */
export interface RouteHost {
  name: string;
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
  sshCommonArgs?: string;
  explicit: { address: boolean; port: boolean; user: boolean };
}

export interface RouteOptions {
  files: readonly ConfigFile[];
  ctx: ReadContext;
  /** --known-hosts when given: the user's known_hosts for every hop (ssh_config's UserKnownHostsFile is then not read). */
  knownHosts?: string;
  acceptNewHostKeys: boolean;
  /** Defaults of GlobalKnownHostsFile (tests pass []). */
  globalKnownHosts?: string[];
}

const DEFAULT_GLOBAL_KNOWN_HOSTS = ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];
const MAX_HOPS = 10;

interface Given {
  address?: string;
  port?: number;
  user?: string;
  key?: string;
}

function configPort(p: Located<string>): number {
  if (!/^\d{1,5}$/.test(p.value) || Number(p.value) < 1 || Number(p.value) > 65535)
    throw new UsageError(`${p.where}: Port ${p.value} is not a port number (1-65535)`, { hint: 'fix that line, or pass --ssh-config none' });
  return Number(p.value);
}

function yes(v: Located<string> | undefined): boolean {
  return v !== undefined && /^(yes|true)$/i.test(v.value);
}

/** One hop: `hostArg` as given to ssh, `given` what the inventory or the jump spec set. */
function endpoint(
  hostArg: string,
  given: Given,
  defaultUser: string,
  fallbackKey: string | undefined,
  opts: RouteOptions,
  warnings: string[],
): { ep: SshEndpoint; cfg: HostConfig } {
  const { ctx } = opts;
  const cfg = evaluateSshConfig(opts.files, hostArg, ctx, given.user);
  warnings.push(...cfg.warnings);
  const original = hostArg;
  const address = given.address ?? (cfg.hostName ? expandTokens(cfg.hostName, { host: original, original, port: 0, user: '', localUser: ctx.localUser, home: ctx.home }, '%hn', false) : hostArg);
  const port = given.port ?? (cfg.port ? configPort(cfg.port) : 22);
  const user = given.user ?? cfg.user?.value ?? defaultUser;
  const tokens = { host: address, original, port, user, localUser: ctx.localUser, home: ctx.home };
  const paths = '%dhnpru';

  let privateKeyFile = given.key;
  if (privateKeyFile === undefined) {
    for (const f of cfg.identityFiles) {
      if (f.value.toLowerCase() === 'none') continue;
      const file = expandTokens(f, tokens, paths);
      if (existsSync(file)) {
        privateKeyFile = file;
        break;
      }
      warnings.push(`${f.where}: IdentityFile ${file} does not exist (skipped, as ssh does)`);
    }
  }
  privateKeyFile ??= fallbackKey;

  const userFiles = opts.knownHosts !== undefined ? [opts.knownHosts] : cfg.userKnownHostsFiles ? cfg.userKnownHostsFiles.value.map((v) => expandTokens({ value: v, where: cfg.userKnownHostsFiles!.where }, tokens, paths)) : [join(ctx.home, '.ssh', 'known_hosts'), join(ctx.home, '.ssh', 'known_hosts2')];
  const globalFiles = cfg.globalKnownHostsFiles
    ? cfg.globalKnownHostsFiles.value.map((v) => expandTokens({ value: v, where: cfg.globalKnownHostsFiles!.where }, tokens, paths))
    : (opts.globalKnownHosts ?? DEFAULT_GLOBAL_KNOWN_HOSTS);
  const label = `${user}@${endpointOf(address, port)}`;

  let acceptNew = opts.acceptNewHostKeys;
  const shk = cfg.strictHostKeyChecking;
  if (shk && /^(no|off)$/i.test(shk.value)) warnings.push(`${shk.where}: StrictHostKeyChecking ${shk.value} is ignored for ${hostArg}: kha-deploy always verifies host keys (--accept-new-host-keys trusts hosts not yet known)`);
  else if (shk && /^accept-new$/i.test(shk.value)) acceptNew = true;
  const knownHostsFile = userFiles[0]!;
  if (acceptNew && knownHostsFile === '/dev/null') {
    warnings.push(`${cfg.userKnownHostsFiles?.where ?? '--known-hosts'}: known_hosts is /dev/null for ${hostArg}: new host keys cannot be recorded there, so they are refused, not accepted`);
    acceptNew = false;
  }

  return {
    cfg,
    ep: {
      address,
      port,
      user,
      ...(privateKeyFile !== undefined ? { privateKeyFile } : {}),
      identitiesOnly: yes(cfg.identitiesOnly),
      knownHostsFile,
      extraKnownHostsFiles: [...new Set([...userFiles.slice(1), ...globalFiles])],
      acceptNewHostKeys: acceptNew,
      label,
    },
  };
}

/** Hops from a ProxyJump or ProxyCommand value; a refusal names where the value came from. */
function hopsOf(kind: 'ProxyJump' | 'ProxyCommand', value: string, where: string, host: string): HopSpec[] {
  try {
    return kind === 'ProxyJump' ? parseProxyJump(value) : parseProxyCommand(value);
  } catch (err) {
    if (!(err instanceof ProxyError)) throw err;
    throw new UsageError(`${where}: ${err.message} (for ${host}; no host was contacted)`, {
      hint: kind === 'ProxyCommand' ? 'write the jump as ProxyJump [USER@]HOST[:PORT] (or -o ProxyJump=… in ansible_ssh_common_args)' : 'write ProxyJump as [USER@]HOST[:PORT][,…]',
    });
  }
}

/** Resolve how to reach `h`. Throws UsageError (exit 2) for what cannot be honoured. */
export function resolveRoute(h: RouteHost, opts: RouteOptions): SshRoute {
  const warnings: string[] = [];
  const { ep: target, cfg } = endpoint(
    h.address,
    {
      ...(h.explicit.address ? { address: h.address } : {}),
      ...(h.explicit.port ? { port: h.port } : {}),
      ...(h.explicit.user ? { user: h.user } : {}),
      ...(h.privateKeyFile !== undefined ? { key: h.privateKeyFile } : {}),
    },
    h.user,
    undefined,
    opts,
    warnings,
  );

  // The first jump source wins: ansible_ssh_common_args (Ansible's -o come first), then ssh_config.
  let hops: HopSpec[] = [];
  let from: string | undefined;
  if (h.sshCommonArgs !== undefined) {
    const where = `${h.name}: ansible_ssh_common_args`;
    let parsed;
    try {
      parsed = parseCommonArgs(h.sshCommonArgs);
    } catch (err) {
      if (!(err instanceof ProxyError)) throw err;
      throw new UsageError(`${where}: ${err.message} (no host was contacted)`, { hint: "write it as -o ProxyJump=USER@HOST[:PORT], e.g. ansible_ssh_common_args='-o ProxyJump=ops@bastion'" });
    }
    warnings.push(...parsed.warnings.map((w) => `ansible_ssh_common_args: ${w}`));
    if (parsed.proxyJump !== undefined) {
      hops = hopsOf('ProxyJump', parsed.proxyJump, where, h.name);
      from = where;
    } else if (parsed.proxyCommand !== undefined) {
      hops = hopsOf('ProxyCommand', parsed.proxyCommand, where, h.name);
      from = where;
    }
  }
  if (from === undefined && cfg.proxyJump) hops = hopsOf('ProxyJump', cfg.proxyJump.value, cfg.proxyJump.where, h.name);
  else if (from === undefined && cfg.proxyCommand) hops = hopsOf('ProxyCommand', cfg.proxyCommand.value, cfg.proxyCommand.where, h.name);

  // Like `ssh -J a,b`: hop b is reached through a; a's own ProxyJump (from ssh_config) is followed too.
  const jumps: SshEndpoint[] = [];
  const seen = new Set<string>();
  const expand = (list: HopSpec[], depth: number) => {
    list.forEach((spec, i) => {
      if (depth + jumps.length >= MAX_HOPS) throw new UsageError(`more than ${MAX_HOPS} jump hosts in front of ${h.name}: is there a ProxyJump loop in ssh_config?`);
      const given: Given = { ...(spec.user !== undefined ? { user: spec.user } : {}), ...(spec.port !== undefined ? { port: spec.port } : {}) };
      if (spec.identityFile !== undefined) given.key = expandTokens({ value: spec.identityFile, where: 'ProxyCommand -i' }, { host: spec.host, original: spec.host, port: spec.port ?? 22, user: spec.user ?? opts.ctx.localUser, localUser: opts.ctx.localUser, home: opts.ctx.home }, '%dhnpru');
      // A jump host without a key of its own is offered the master's key (the usual single deploy key).
      const { ep, cfg: hopCfg } = endpoint(spec.host, given, opts.ctx.localUser, target.privateKeyFile, opts, warnings);
      const key = `${ep.user}@${ep.address}:${ep.port}`;
      if (seen.has(key)) throw new UsageError(`jump host ${key} appears twice on the way to ${h.name}: is there a ProxyJump loop in ssh_config?`);
      seen.add(key);
      if (i === 0 && (hopCfg.proxyJump || hopCfg.proxyCommand)) {
        const inner = hopCfg.proxyJump ? hopsOf('ProxyJump', hopCfg.proxyJump.value, hopCfg.proxyJump.where, spec.host) : hopsOf('ProxyCommand', hopCfg.proxyCommand!.value, hopCfg.proxyCommand!.where, spec.host);
        expand(inner, depth + 1);
      }
      jumps.push(ep);
    });
  };
  expand(hops, 0);
  if (jumps.some((j) => j.address === target.address && j.port === target.port)) throw new UsageError(`${h.name} (${target.label}) is its own jump host`, { hint: 'exclude the jump host from the Host pattern that sets ProxyJump (e.g. Host 10.0.0.* !10.0.0.5)' });
  return { target, jumps, warnings: [...new Set(warnings)] };
}
