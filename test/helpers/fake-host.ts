// An in-memory model of a cluster of masters behind the engine's `Remote` interface, pyinfra-style:
// facts in, commands and results out. Every script kha-deploy sends starts with a tag line
// (`# kha-deploy KIND ARG…`, src/shell.ts scriptTag); the model dispatches on that line and reads
// nothing else of a script body except the applied hash a service script records. An unknown tag
// is a test failure (recorded in `cluster.unexpected`, and the command rejects).
//
// Per host: files (with FILE.kha-backup-N backups), packages (curl ships with the OS unless
// `curl: false`), the versions the facts report for keepalived and haproxy once installed (and
// PROMEX, process events), units {active, enabled, mainPid, loaded config}, interfaces. Per
// cluster: the VIP election (the highest `priority` among hosts whose keepalived and haproxy are
// both active, read from the keepalived.conf keepalived LOADED).
// kha-deploy remove: its removal facts ride in the lock command; `remove …` commands stop/disable
// units, run the cp/mv/rm lines of a files script, delete the state, remove packages.
// Faults: connect failure, validator rejection, a unit that does not come up, kubectl answers,
// forced split brain / nobody, a connection lost at the Nth command, a command that hangs.
//
//   const fc = new FakeCluster(cluster(), fastPlaybook());      // fresh Debian 12 masters
//   fc.converge();                                              // or: every master converged
//   fc.host('master2').rejectWrite('/etc/haproxy/haproxy.cfg', '[ALERT] parsing line 12');
//   await runRollout({ ..., connect: fc.connect });
//   fc.host('master1').tags()   // ['lock /run/lock', 'packages apt keepalived haproxy', 'facts', …]
//   fc.log                      // every command of every host, in the order they were sent
import { isIPv6 } from 'node:net';
import { ConnectError, DeadlineError, InterruptedError } from '../../src/errors.js';
import { CURL_PATH, parseFacts } from '../../src/facts.js';
import { PACKAGE_KEYS, loadPlaybook, type Playbook } from '../../src/playbook.js';
import { sha256Hex } from '../../src/plan.js';
import { renderHaproxy, renderKeepalived, renderTmpfiles } from '../../src/render.js';
import type { ClusterSpec, HeldCommand, HoldOptions, HostSpec, InterfaceFacts, ManagedUnit, PackageKey, Remote, RemoteResult, RunOptions } from '../../src/types.js';

export const UNITS: ManagedUnit[] = ['keepalived', 'haproxy'];
const STATE_DIR = '/var/lib/kha-deploy';
const BACKUP_INFIX = '.kha-backup-';
const ORIGINAL = '.kha-original';
const ORIGINAL_ABSENT = '.kha-original-absent';
const TMPFILES_DIRS = ['/etc/tmpfiles.d', '/run/tmpfiles.d', '/usr/lib/tmpfiles.d'];
export const KNOWN_KINDS = ['lock', 'facts', 'packages', 'rundir', 'write', 'service', 'rollback', 'observe', 'journal', 'neighbour', 'kill', 'preflight', 'remove', 'vip-hold'] as const;
export type CommandKind = (typeof KNOWN_KINDS)[number];

export const SERVER_VERSION = 'v1.29.3';
export const KUBECTL_OK = `Client Version: ${SERVER_VERSION}\nKustomize Version: v5.0.4-0.20230601165947-6ce0bf390ce3\nServer Version: ${SERVER_VERSION}`;

/** The packaged playbook with gates shrunk to milliseconds (built directly: parsePlaybook's minimums are 1 s / 0.1 s). */
export function fastPlaybook(gate: { timeoutSeconds?: number; intervalSeconds?: number } = {}): Playbook {
  const pb = loadPlaybook();
  const g = { timeoutSeconds: gate.timeoutSeconds ?? 0.3, intervalSeconds: gate.intervalSeconds ?? 0.01 };
  return {
    ...pb,
    gates: {
      primary: { ...pb.gates.primary, ...g },
      backup: { ...pb.gates.backup, ...g },
      final: { ...pb.gates.final, ...g },
    },
  };
}

export type OsName = 'debian' | 'rocky';
/** What an installed keepalived/haproxy reports in the facts (keepalived --version, haproxy -vv). */
export interface FakeVersions {
  keepalived: string;
  haproxy: string;
  /** haproxy -vv lists PROMEX. */
  promex: boolean;
}
// promex is false by default (Debian 12's real haproxy has it: pass `versions: { promex: true }`), so that
// what a fake master runs equals renderHaproxy(spec, playbook) without facts; the keepalived and
// haproxy versions render like unknown ones (vrrp_track_process, expose-fd, hard-stop-after).
const OS: Record<OsName, { release: string[]; manager: 'apt' | 'dnf'; cmds: Record<'apt-get' | 'dnf' | 'yum', string>; versions: FakeVersions }> = {
  debian: { release: ['os.id=debian'], manager: 'apt', cmds: { 'apt-get': '/usr/bin/apt-get', dnf: '', yum: '' }, versions: { keepalived: '2.2.7', haproxy: '2.6.12', promex: false } },
  rocky: {
    release: ['os.id="rocky"', 'os.id_like="rhel centos fedora"'],
    manager: 'dnf',
    cmds: { 'apt-get': '', dnf: '/usr/bin/dnf', yum: '/usr/bin/yum' },
    versions: { keepalived: '2.2.8', haproxy: '2.4.22', promex: false },
  },
};

/** What kubectl through the VIP answers on a host. 'auto': the model decides (VIP held by a host whose haproxy runs). */
export type KubectlMode = 'auto' | 'ok' | 'x509' | 'refused' | 'missing' | { output: string; rc: number };

export const KUBECTL_X509 = (vip: string) =>
  `E0101 00:00:00.000000    4242 memcache.go:265] couldn't get current server API group list: Get "https://${vip}:8443/api?timeout=5s": tls: failed to verify certificate: x509: certificate is valid for 10.96.0.1, 10.0.0.11, 10.0.0.12, 10.0.0.13, 127.0.0.1, not ${vip}\nUnable to connect to the server: tls: failed to verify certificate: x509: certificate is valid for 10.96.0.1, 10.0.0.11, not ${vip}`;
export const KUBECTL_REFUSED = (vip: string) => `The connection to the server ${vip}:8443 was refused - did you specify the right host or port?`;

export interface FakeUnit {
  active: string;
  enabled: string;
  mainPid: number;
  /** The config content the running unit loaded (null: none / not running). */
  loaded: string | null;
}

export interface FakeCommand {
  /** Position in the cluster-wide log. */
  seq: number;
  host: string;
  /** Which connection (FakeRemote) sent it. */
  session: number;
  kind: string;
  args: string[];
  script: string;
  stdin?: string;
  label?: string;
  timeoutMs?: number;
  signal: boolean;
  hold: boolean;
  /** Exit code the model answered with; undefined while pending or when the command rejected. */
  code?: number | null;
  /** The command rejected (lost connection, deadline, interrupt, unknown tag). */
  rejected?: string;
}

interface ServiceFault {
  unit: ManagedUnit;
  actions: string[] | 'any';
  remaining: number;
  message: string;
}

interface HangFault {
  kind: string;
  match?: (c: FakeCommand) => boolean;
  remaining: number;
  /** What the hung command had printed. */
  output: string;
}

export interface FakeHostOptions {
  os?: OsName;
  /** /usr/bin/curl ships with the OS image (default true); false: the packages step must install it. */
  curl?: boolean;
  /** Versions the facts report once the packages are installed (default: the OS's, see OS). */
  versions?: Partial<FakeVersions>;
  /** proc.events in the facts: 'yes' on a VM (default), 'no' in a container with its own PID namespace, '' unknown. */
  procEvents?: 'yes' | 'no' | '';
  /** Interfaces with their addresses (CIDR); default: lo + ens192 with the host's address. */
  interfaces?: InterfaceFacts[];
  /** The interface of the route to the VIP (default: the first non-lo interface). */
  routeInterface?: string;
}

let remoteIds = 0;

export class FakeHost {
  readonly name: string;
  readonly os: OsName;
  readonly files = new Map<string, string>();
  readonly dirs = new Set<string>();
  readonly packages = new Set<string>();
  /** curl came with the OS (not one of `packages`, which holds what was installed on top). */
  curlPreinstalled: boolean;
  versions: FakeVersions;
  procEvents: 'yes' | 'no' | '';
  readonly units: Record<ManagedUnit, FakeUnit> = {
    keepalived: { active: 'inactive', enabled: '', mainPid: 0, loaded: null },
    haproxy: { active: 'inactive', enabled: '', mainPid: 0, loaded: null },
  };
  interfaces: InterfaceFacts[];
  routeInterface: string;
  readonly journal: Record<ManagedUnit, string[]> = { keepalived: [], haproxy: [] };
  /** `ip neigh show VIP` output on this host (the foreign-owner probe). */
  neighbour = '';
  kubectl: KubectlMode = 'auto';
  /** Every command sent to this host, in order. */
  readonly commands: FakeCommand[] = [];
  /** The connection holding this host's run lock (null: free). */
  lockHolder: FakeRemote | null = null;
  /** Times a held lock was released (release()). */
  lockReleases = 0;
  /** Another kha-deploy run holds the lock: its owner line (the lock command exits 75). */
  lockedBy: string | null = null;
  /** HTTP status this host's apiserver gives an anonymous GET /readyz (the preflight probe). */
  readyz = '200';
  /** Forced keepalived VRRP FAULT on this host: the journal line that explains it (null: none). */
  vrrpFault: string | null = null;
  /** Backends this host's haproxy sees DOWN, with their check status (e.g. { master2: 'L7STS' }). */
  backendsDown: Record<string, string> = {};

  // Faults
  connectError: Error | null = null;
  private readonly writeRejects = new Map<string, string>();
  private readonly serviceFaults: ServiceFault[] = [];
  private readonly hangs: HangFault[] = [];
  private loseAt: number | null = null;
  private loseOn: { kind: string; match?: (c: FakeCommand) => boolean } | null = null;
  private packageFailure: { code: number; stderr: string } | null = null;
  private vipHiddenObservations = 0;
  private pidSeq = 1000;
  /** Observe commands this host answered. */
  observations = 0;

  constructor(
    readonly cluster: FakeCluster,
    readonly spec: HostSpec,
    opts: FakeHostOptions = {},
  ) {
    this.name = spec.name;
    this.os = opts.os ?? 'debian';
    this.curlPreinstalled = opts.curl ?? true;
    this.versions = { ...OS[this.os].versions, ...opts.versions };
    this.procEvents = opts.procEvents ?? 'yes';
    const v6 = isIPv6(spec.address);
    this.interfaces = opts.interfaces ?? [
      { name: 'lo', addrs: ['127.0.0.1/8', '::1/128'] },
      { name: 'ens192', addrs: [`${spec.address}/${v6 ? 64 : 24}`] },
    ];
    this.routeInterface = opts.routeInterface ?? spec.vipInterface ?? this.interfaces.find((i) => i.name !== 'lo')?.name ?? 'eth0';
  }

  // ---- fault injection --------------------------------------------------------------------

  /** connect() to this host rejects (default: a ConnectError like "connection refused"). */
  failConnect(err?: Error): this {
    this.connectError =
      err ??
      new ConnectError(this.name, 'connect', `cannot connect to ${this.target()}: connection refused`, {
        hint: 'check that sshd runs on the host and that the port is right',
      });
    return this;
  }

  /** A write of `path` fails its validator: exit 65 with `message` on stderr; the old file stays. */
  /** Writes are accepted again (undoes rejectWrite). */
  acceptWrites(): this {
    this.writeRejects.clear();
    return this;
  }

  rejectWrite(path: string, message: string): this {
    this.writeRejects.set(path, message);
    return this;
  }

  /** `unit` does not come up after `action` (next `times` times): it ends 'failed' and the command exits 3. */
  failService(unit: ManagedUnit, action: 'enable-start' | 'reload' | 'restart' | 'any', opts: { times?: number; message?: string } = {}): this {
    this.serviceFaults.push({
      unit,
      actions: action === 'any' ? 'any' : [action],
      remaining: opts.times ?? 1,
      message: opts.message ?? `${unit}[4242]: [ALERT] (4242) : config : cannot start: fatal errors found in configuration`,
    });
    return this;
  }

  /** The package manager fails (exit `code`, `stderr`). */
  failPackages(stderr = 'E: Unable to locate package keepalived', code = 100): this {
    this.packageFailure = { code, stderr };
    return this;
  }

  /** The connection drops at the Nth command sent over one connection (1-based; once): that command and every later one reject with ConnectError. */
  loseConnectionAt(n: number): this {
    this.loseAt = n;
    return this;
  }

  /** The connection drops when the next command of `kind` (and `match`) is sent (once); it has no effect on the host. */
  loseConnectionOn(kind: CommandKind, match?: (c: FakeCommand) => boolean): this {
    this.loseOn = { kind, ...(match ? { match } : {}) };
    return this;
  }

  /**
   * The next `times` commands of `kind` (and `match`, when given) never finish: they reject with
   * DeadlineError at RunOptions.timeoutMs, InterruptedError when RunOptions.signal aborts, and with a
   * plain "hung without deadline" Error after `cluster.hangSafetyMs` when the caller gave neither.
   */
  hang(kind: CommandKind, opts: { times?: number; match?: (c: FakeCommand) => boolean; output?: string } = {}): this {
    this.hangs.push({ kind, remaining: opts.times ?? 1, output: opts.output ?? '', ...(opts.match ? { match: opts.match } : {}) });
    return this;
  }

  /** This host's own address listing hides the VIP it holds for its next `n` observe commands (VIP still arriving). */
  vipAppearsAfter(n: number): this {
    this.vipHiddenObservations = n;
    return this;
  }

  // ---- queries ------------------------------------------------------------------------------

  target(): string {
    const a = isIPv6(this.spec.address) ? `[${this.spec.address}]` : this.spec.address;
    return `${this.spec.user}@${a}:${this.spec.port}`;
  }

  installed(key: PackageKey): boolean {
    return (key === 'curl' && this.curlPreinstalled) || this.packages.has(this.cluster.playbook.packages[key]);
  }

  /** Kinds of the commands sent, in order: ['lock', 'packages', 'facts', 'write', …]. */
  kinds(): string[] {
    return this.commands.map((c) => c.kind);
  }

  /** Tags (kind + args) of the commands sent, in order: ['lock /run/lock', 'service haproxy reload', …]. */
  tags(): string[] {
    return this.commands.map((c) => [c.kind, ...c.args].join(' '));
  }

  commandsOf(kind: CommandKind): FakeCommand[] {
    return this.commands.filter((c) => c.kind === kind);
  }

  /** Commands that change something on the host (packages, rundir, write, service, rollback). */
  changes(): FakeCommand[] {
    return this.commands.filter((c) => ['packages', 'rundir', 'write', 'service', 'rollback'].includes(c.kind));
  }

  backups(path: string): string[] {
    return [...this.files.keys()].filter((p) => p.startsWith(path + BACKUP_INFIX)).sort();
  }

  /** A deep copy of the host's state (files, dirs, packages, units) to compare before/after. */
  snapshot(): { files: Record<string, string>; dirs: string[]; packages: string[]; units: Record<ManagedUnit, FakeUnit> } {
    return {
      files: Object.fromEntries([...this.files].sort()),
      dirs: [...this.dirs].sort(),
      packages: [...this.packages].sort(),
      units: structuredClone(this.units),
    };
  }

  /** The VIP placement of this host as the model has it (interface, prefix), ignoring vipAppearsAfter. */
  vipPlacement(): { iface: string; prefix: number; vip?: string } | undefined {
    return this.cluster.placement().find((p) => p.host === this.name);
  }

  /** The facts script's output for this host, as factsScript prints it (see test/fixtures/facts/). */
  factsText(): string {
    const pb = this.cluster.playbook;
    const os = OS[this.os];
    const lines = ['kha-facts 1', ...os.release];
    for (const c of ['apt-get', 'dnf', 'yum'] as const) lines.push(`cmd.${c}=${os.cmds[c]}`);
    for (const u of UNITS) lines.push(`bin.${u}=${this.installed(u) ? `/usr/sbin/${u}` : ''}`);
    lines.push(`bin.curl=${this.installed('curl') ? CURL_PATH : ''}`);
    const v = this.versions;
    lines.push(`keepalived.version=${this.installed('keepalived') ? v.keepalived : ''}`);
    lines.push(`haproxy.version=${this.installed('haproxy') ? v.haproxy : ''}`, `haproxy.promex=${this.installed('haproxy') ? (v.promex ? 'yes' : 'no') : ''}`);
    lines.push(`proc.events=${this.procEvents}`);
    for (const p of [pb.files.haproxy.path, pb.files.keepalived.path, pb.files.tmpfiles.path]) {
      const content = this.files.get(p);
      lines.push(`file ${content === undefined ? '-' : sha256Hex(content)} ${p}`);
    }
    for (const u of UNITS) {
      const applied = this.files.get(`${STATE_DIR}/${u}.applied`);
      lines.push(`applied.${u}=${applied === undefined ? '' : (applied.split('\n')[0] ?? '').replace(/[^0-9a-f]/g, '')}`);
    }
    lines.push(`rundir=${this.dirs.has(pb.runDir) ? 'yes' : 'no'}`);
    lines.push(`rundir.tmpfiles=${this.tmpfilesEntry() ?? ''}`);
    lines.push(...keepalivedConfLines(this.files.get(pb.files.keepalived.path)));
    for (const u of UNITS) {
      const unit = this.units[u];
      const loaded = this.installed(u);
      lines.push(`@begin unit.${u}`);
      lines.push(`LoadState=${loaded ? 'loaded' : 'not-found'}`, `ActiveState=${loaded ? unit.active : 'inactive'}`, `UnitFileState=${loaded ? unit.enabled : ''}`, `MainPID=${loaded ? unit.mainPid : 0}`);
      lines.push(`@end unit.${u}`);
    }
    lines.push('@begin ip-addr', ...this.addrLines(true), '@end ip-addr');
    lines.push('@begin ip-route', this.routeLine(), '@end ip-route');
    lines.push('kha-facts end');
    return lines.join('\n') + '\n';
  }

  /** `ip -o addr show` lines; the VIP appears on the holder (unless hidden by vipAppearsAfter). */
  addrLines(showVip: boolean): string[] {
    const place = showVip ? this.vipPlacement() : undefined;
    // vrrpInstances: the VIP of the instance this host holds (a vip change), else the cluster's.
    const vip = place?.vip ?? this.cluster.spec.vip;
    const out: string[] = [];
    this.interfaces.forEach((iface, i) => {
      const addrs = [...iface.addrs];
      if (place && place.iface === iface.name) {
        // ip lists IPv4 before IPv6; the VIP follows the interface's other addresses of its family.
        const v6 = isIPv6(vip);
        const at = v6 ? addrs.length : addrs.filter((a) => !isIPv6(a.split('/')[0]!)).length;
        addrs.splice(at, 0, `${vip}/${place.prefix}`);
      }
      for (const cidr of addrs) out.push(addrLine(i + 1, iface.name, cidr, cidr.split('/')[0] === vip));
    });
    if (place && !this.interfaces.some((i) => i.name === place.iface)) {
      out.push(addrLine(this.interfaces.length + 1, place.iface, `${vip}/${place.prefix}`, true));
    }
    return out;
  }

  private routeLine(): string {
    const vip = this.cluster.factsVip ?? this.cluster.spec.vip;
    const place = this.vipPlacement();
    if (place && (place.vip ?? this.cluster.spec.vip) === vip) return `local ${vip} dev lo table local src ${vip} uid 0 \\    cache <local> `;
    const own = this.interfaces.find((i) => i.name === this.routeInterface)?.addrs.find((a) => isIPv6(a.split('/')[0]!) === isIPv6(vip));
    return `${vip} dev ${this.routeInterface} src ${own?.split('/')[0] ?? this.spec.address} uid 0 \\    cache `;
  }

  /** The first tmpfiles.d entry that creates the run directory (earlier directories first). */
  private tmpfilesEntry(): string | undefined {
    const runDir = this.cluster.playbook.runDir;
    const re = new RegExp(`^[\\t ]*[dDvqQ]\\S*[\\t ]+${runDir.startsWith('/run/') ? '(/var)?' : ''}${runDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/?([\\t ]|$)`, 'm');
    for (const d of TMPFILES_DIRS) {
      for (const p of [...this.files.keys()].filter((f) => f.startsWith(`${d}/`) && f.endsWith('.conf') && !f.slice(d.length + 1).includes('/')).sort()) {
        if (re.test(this.files.get(p)!)) return p;
      }
    }
    return undefined;
  }

  // ---- what the commands do ------------------------------------------------------------------

  /** Runs one tagged command against the model. Throws UnexpectedCommand for what the model does not know. */
  execute(c: FakeCommand): RemoteResult {
    switch (c.kind) {
      case 'facts':
        if (c.hold) throw new UnexpectedCommand(this.name, 'the facts script is run, not held (the lock embeds it)', c);
        return ok(this.factsText());
      case 'packages':
        return this.installPackages(c);
      case 'rundir':
        this.dirs.add(c.args[0] ?? this.cluster.playbook.runDir);
        return ok('');
      case 'write':
        return this.write(c);
      case 'service':
        return this.service(c);
      case 'rollback':
        return this.rollback(c);
      case 'observe':
        return this.observe(c);
      case 'journal': {
        const unit = c.args[0] as ManagedUnit;
        if (!UNITS.includes(unit)) throw new UnexpectedCommand(this.name, `journal of an unknown unit ${unit}`, c);
        return ok(this.journal[unit].length ? this.journal[unit].join('\n') + '\n' : '-- No entries --\n');
      }
      case 'neighbour':
        return ok(this.neighbour ? this.neighbour + '\n' : '');
      case 'preflight':
        if (c.args[0] === 'vrid-collect' && c.args[1] === `/tmp/kha-deploy-vrrp.${this.name}`) return ok(this.vridCollected());
        throw new UnexpectedCommand(this.name, `a preflight command run on its own: ${c.args.join(' ')}`, c);
      case 'vip-hold': {
        // src/vip-hold.ts: the holding copy itself is not modelled; a release reports whether this host holds the VIP again.
        this.vipHolds.push(c.args[0] ?? '');
        if (c.args[0] !== 'release') return ok('');
        return ok(`@@KHA-VIPHOLD ${this.cluster.placement().some((p) => p.host === this.name) ? 'back' : 'not-back'}\n`);
      }
      case 'kill':
        return ok('');
      case 'remove':
        return this.remove(c);
      default:
        throw new UnexpectedCommand(this.name, `unknown command tag '${c.kind}'`, c);
    }
  }

  private installPackages(c: FakeCommand): RemoteResult {
    const [manager, ...pkgs] = c.args;
    if (manager !== OS[this.os].manager) return fail(127, `sh: 1: ${manager === 'apt' ? 'apt-get' : manager}: not found`);
    if (this.packageFailure) return fail(this.packageFailure.code, this.packageFailure.stderr);
    const pb = this.cluster.playbook;
    for (const pkg of pkgs) {
      const key = PACKAGE_KEYS.find((k) => pb.packages[k] === pkg);
      if (!key) throw new UnexpectedCommand(this.name, `package ${pkg} is not one the playbook manages`, c);
      this.packages.add(pkg);
      if (key === 'curl') continue;
      const unit: ManagedUnit = key;
      // Debian enables units on install (policy-rc.d keeps them stopped); RHEL leaves them disabled.
      this.units[unit] = { active: 'inactive', enabled: this.os === 'debian' ? 'enabled' : 'disabled', mainPid: 0, loaded: null };
      if (unit === 'haproxy') {
        if (!this.files.has(pb.files.haproxy.path)) this.files.set(pb.files.haproxy.path, '# haproxy.cfg shipped by the package\nglobal\n\tlog /dev/log local0\n');
        if (this.os === 'debian') {
          this.files.set('/usr/lib/tmpfiles.d/haproxy.conf', `d ${pb.runDir} 2775 haproxy haproxy -\n`);
          this.dirs.add(pb.runDir);
        }
      }
      if (unit === 'keepalived' && this.os === 'rocky' && !this.files.has(pb.files.keepalived.path)) {
        this.files.set(pb.files.keepalived.path, '! keepalived.conf shipped by the package\nglobal_defs {\n}\n');
      }
    }
    return ok(`Setting up ${pkgs.join(', ')} ...\n`);
  }

  private write(c: FakeCommand): RemoteResult {
    const path = c.args[0];
    if (!path?.startsWith('/')) throw new UnexpectedCommand(this.name, 'write without an absolute path in its tag', c);
    if (c.stdin === undefined) throw new UnexpectedCommand(this.name, `write ${path} without the content on stdin`, c);
    const rejected = this.writeRejects.get(path);
    if (rejected !== undefined) return fail(65, rejected + '\n');
    const old = this.files.get(path);
    // As writeFileScript: the first write keeps what was there (src/apply.ts ORIGINAL_SUFFIX).
    if (!this.files.has(path + ORIGINAL) && !this.files.has(path + ORIGINAL_ABSENT)) {
      const o = this.inferOriginal(path);
      if (o === 'absent') this.files.set(path + ORIGINAL_ABSENT, '');
      else if (o !== 'unknown') this.files.set(path + ORIGINAL, this.files.get(o.copy)!);
    }
    let backup = '';
    if (old !== undefined) {
      backup = `${path}${BACKUP_INFIX}${this.cluster.nextBackupStamp()}`;
      this.files.set(backup, old);
    }
    this.files.set(path, c.stdin);
    return ok(`backup=${backup}\n`);
  }

  /** What src/commands/remove.ts removalFactsScript prints for this host. */
  removalFactsText(): string {
    const pb = this.cluster.playbook;
    const lines = ['@@KHA-REMOVE 1'];
    const ours = (p: string) => /^kha-deploy/.test(p.replace(/^.*\//, '')) || (this.files.get(p) ?? '').includes('Rendered by kha-deploy');
    for (const p of [pb.files.haproxy.path, pb.files.keepalived.path, pb.files.tmpfiles.path]) {
      let original: string;
      if (this.files.has(p + ORIGINAL)) original = 'recorded';
      else if (this.files.has(p + ORIGINAL_ABSENT)) original = 'recorded-absent';
      else {
        const o = this.inferOriginal(p);
        original = typeof o === 'string' ? o : `copy ${o.copy}`;
      }
      const now = !this.files.has(p) ? 'missing' : ours(p) ? 'ours' : 'other';
      lines.push(`remove.file ${p} now=${now} backups=${this.backups(p).length} original=${original}`);
    }
    lines.push(`remove.state=${[...this.files.keys()].some((f) => f.startsWith(`${STATE_DIR}/`)) ? 'yes' : 'no'}`, '@@KHA-REMOVE end');
    return lines.join('\n') + '\n';
  }

  /**
   * kha-deploy remove's commands: `remove units U…` stops and disables them (then prints the address
   * listing), `remove configs|tmpfiles PATH…` runs the script's cp/mv/rm lines (the only body read),
   * `remove state DIR`, `remove packages MANAGER PKG…` (apt: purge, also the package's conffiles).
   */
  private remove(c: FakeCommand): RemoteResult {
    const [what, ...args] = c.args;
    const pb = this.cluster.playbook;
    switch (what) {
      case 'units': {
        for (const u of args) {
          if (!UNITS.includes(u as ManagedUnit)) throw new UnexpectedCommand(this.name, `remove units: unknown unit ${u}`, c);
          const unit = this.units[u as ManagedUnit];
          Object.assign(unit, { active: 'inactive', mainPid: 0, loaded: null, enabled: unit.enabled === 'enabled' ? 'disabled' : unit.enabled });
          this.journal[u as ManagedUnit].push(`systemd[1]: Stopped ${u}.service.`);
        }
        return ok(`@@KHA-ADDR\n${this.addrLines(true).join('\n')}\n`);
      }
      case 'configs':
      case 'tmpfiles':
        return this.removeFiles(c);
      case 'state':
        for (const f of [...this.files.keys()]) if (f.startsWith(`${STATE_DIR}/`)) this.files.delete(f);
        return ok('');
      case 'packages': {
        const [manager, ...pkgs] = args;
        if (manager !== OS[this.os].manager) return fail(127, `sh: 1: ${manager === 'apt' ? 'apt-get' : manager}: not found`);
        for (const pkg of pkgs) {
          const key = PACKAGE_KEYS.find((k) => pb.packages[k] === pkg);
          if (!key || key === 'curl') throw new UnexpectedCommand(this.name, `remove packages: ${pkg} is not keepalived or haproxy`, c);
          this.packages.delete(pkg);
          this.units[key] = { active: 'inactive', enabled: '', mainPid: 0, loaded: null };
          if (key === 'haproxy' && this.os === 'debian') {
            this.files.delete(pb.files.haproxy.path);
            this.files.delete('/usr/lib/tmpfiles.d/haproxy.conf');
          }
        }
        return ok(`Removing ${pkgs.join(', ')} ...\n`);
      }
      default:
        throw new UnexpectedCommand(this.name, `remove ${what}: unknown`, c);
    }
  }

  /** The cp -p / mv -f / rm -f lines of a remove files script, on the model's files. */
  private removeFiles(c: FakeCommand): RemoteResult {
    let tmp: string | undefined;
    let tmpContent: string | undefined;
    for (const raw of c.script.split('\n').slice(1)) {
      const l = raw.trim();
      let m: RegExpExecArray | null;
      if ((m = /^kha_t=(\S*)$/.exec(l))) tmp = m[1] || undefined;
      else if ((m = /^cp -p (\S+) "\$kha_t"$/.exec(l))) {
        if (!this.files.has(m[1]!)) return fail(1, `cp: cannot stat '${m[1]}': No such file or directory\n`);
        tmpContent = this.files.get(m[1]!);
      } else if ((m = /^mv -f "\$kha_t" (\S+)$/.exec(l))) {
        if (tmp === undefined || tmpContent === undefined) throw new UnexpectedCommand(this.name, 'mv of a temp file that was not copied', c);
        this.files.set(m[1]!, tmpContent);
        tmpContent = undefined;
      } else if ((m = /^rm -f (.+)$/.exec(l))) {
        for (const word of m[1]!.split(' ')) {
          if (word.endsWith('*')) {
            const prefix = word.slice(0, -1);
            for (const f of [...this.files.keys()]) if (f.startsWith(prefix)) this.files.delete(f);
          } else this.files.delete(word);
        }
      } else if (!/^(set -eu|trap .*|sync .*)$/.test(l)) {
        throw new UnexpectedCommand(this.name, `remove files: a line the model does not read: ${l}`, c);
      }
    }
    return ok('');
  }

  /** The rule of src/apply.ts originalInferenceLines, for a file without a record. */
  inferOriginal(path: string): { copy: string } | 'absent' | 'unknown' {
    const ours = (p: string) => /^kha-deploy/.test(p.replace(/^.*\//, '')) || (this.files.get(p) ?? '').includes('Rendered by kha-deploy');
    const backups = this.backups(path);
    if (backups.length > 0) {
      if (!ours(backups[0]!)) return { copy: backups[0]! };
      return backups.length < this.cluster.playbook.backups ? 'absent' : 'unknown';
    }
    if (this.files.has(path)) return ours(path) ? 'absent' : { copy: path };
    return 'absent';
  }

  private configPath(unit: ManagedUnit): string {
    return this.cluster.playbook.files[unit].path;
  }

  /** Start (or restart) a unit with its current config; false when it does not come up. */
  private start(unit: ManagedUnit, action: string): string | null {
    const u = this.units[unit];
    const fault = this.takeServiceFault(unit, action);
    const runDirMissing = unit === 'haproxy' && !this.dirs.has(this.cluster.playbook.runDir);
    if (fault || runDirMissing) {
      const why = fault ?? `haproxy[4242]: [ALERT] (4242) : Starting frontend GLOBAL: cannot bind UNIX socket (No such file or directory) [${this.cluster.playbook.runDir}/admin.sock]`;
      Object.assign(u, { active: 'failed', mainPid: 0, loaded: null });
      this.journal[unit].push(why, `systemd[1]: ${unit}.service: Failed with result 'exit-code'.`);
      return `${unit} is not active after ${action}`;
    }
    Object.assign(u, { active: 'active', mainPid: ++this.pidSeq, loaded: this.files.get(this.configPath(unit)) ?? null });
    this.journal[unit].push(`systemd[1]: Started ${unit}.service.`);
    return null;
  }

  private takeServiceFault(unit: ManagedUnit, action: string): string | undefined {
    const f = this.serviceFaults.find((x) => x.unit === unit && x.remaining > 0 && (x.actions === 'any' || x.actions.includes(action)));
    if (!f) return undefined;
    f.remaining--;
    return f.message;
  }

  private service(c: FakeCommand): RemoteResult {
    const [unitArg, action] = c.args;
    const unit = unitArg as ManagedUnit;
    if (!UNITS.includes(unit) || !['enable-start', 'reload', 'restart', 'enable', 'stop'].includes(action ?? '')) {
      throw new UnexpectedCommand(this.name, `service tag with unknown unit or action: ${c.args.join(' ')}`, c);
    }
    if (!this.installed(unit)) return fail(5, `Failed to ${action === 'reload' ? 'reload' : 'enable'} unit: Unit ${unit}.service not found.\n`);
    const u = this.units[unit];
    let error: string | null = null;
    if (action === 'stop') {
      // Issue 9: a managed VRRP instance move stops keepalived on the non-holders (systemctl stop).
      Object.assign(u, { active: 'inactive', mainPid: 0, loaded: null });
      this.journal[unit].push(`systemd[1]: Stopped ${unit}.service.`);
      return ok('');
    }
    if (action === 'enable' || action === 'enable-start') u.enabled = 'enabled';
    if (action === 'enable-start') {
      // `systemctl start` of a running unit does nothing.
      if (u.active !== 'active') error = this.start(unit, action);
    } else if (action === 'restart') {
      error = this.start(unit, action);
    } else if (action === 'reload') {
      if (u.active !== 'active') return fail(1, `${unit}.service is not active, cannot reload.\n`);
      const fault = this.takeServiceFault(unit, action);
      if (fault) {
        Object.assign(u, { active: 'failed', mainPid: 0, loaded: null });
        this.journal[unit].push(fault, `systemd[1]: ${unit}.service: Failed with result 'exit-code'.`);
        error = `${unit} is not active after reload`;
      } else {
        u.loaded = this.files.get(this.configPath(unit)) ?? null;
        this.journal[unit].push(`systemd[1]: Reloaded ${unit}.service.`);
      }
    }
    if (error) return fail(3, error + '\n');
    // The one thing read from a service script's body: the hash it records as loaded.
    if (c.script.includes('.applied')) {
      const m = /^printf '%s\\n' '?([0-9a-f]+)'? > (\S+\.applied)$/m.exec(c.script);
      if (!m) throw new UnexpectedCommand(this.name, 'a service script records an applied hash in a form the model does not read', c);
      this.files.set(m[2]!, `${m[1]}\n`);
    }
    return ok('');
  }

  private rollback(c: FakeCommand): RemoteResult {
    const [unitArg, path] = c.args;
    const unit = unitArg as ManagedUnit;
    if (!UNITS.includes(unit) || !path) throw new UnexpectedCommand(this.name, `rollback tag needs UNIT PATH: ${c.args.join(' ')}`, c);
    const backup = this.backups(path).at(-1);
    if (!backup) return fail(1, `cp: cannot stat '${path}${BACKUP_INFIX}*': No such file or directory\n`);
    this.files.set(path, this.files.get(backup)!);
    // The state file goes first: a failed restart must not leave it claiming the new config.
    this.files.delete(`${STATE_DIR}/${unit}.applied`);
    const error = this.start(unit, 'restart');
    if (error) return fail(1, `Job for ${unit}.service failed because the control process exited with error code.\n`);
    return ok('');
  }

  private observe(c: FakeCommand): RemoteResult {
    const mode = c.args[0];
    if (mode !== 'addr' && mode !== 'kubectl') throw new UnexpectedCommand(this.name, `observe ${mode}: expected addr or kubectl`, c);
    const health = c.args[1] === 'health';
    this.observations++;
    const hide = this.vipHiddenObservations > 0;
    if (hide) this.vipHiddenObservations--;
    let out = this.addrLines(!hide).join('\n') + '\n';
    // A script that marks where its own output starts (past a chatty login shell) gets its marker.
    const mark = /^echo (@@KHA-[A-Z]+)$/m.exec(c.script.split('ip -o addr')[0] ?? '');
    if (mark) out = `${mark[1]}\n${out}`;
    if (mode === 'kubectl') {
      const k = this.kubectlAnswer();
      out += `@@KHA-KUBECTL\n${k.output}\n@@KHA-RC=${k.rc}\n`;
    }
    // As observeScript prints them: the health sections ran in the background and come last.
    if (health) out += this.healthText();
    return ok(out);
  }

  /** The health sections of an observation (see observeScript): keepalived's state, own haproxy, haproxy's view. */
  private healthText(): string {
    const k = this.units.keepalived;
    const ha = this.units.haproxy;
    const holds = this.cluster.placement().some((p) => p.host === this.name);
    const log: string[] = [];
    if (k.active === 'active') {
      log.push('(VI-kube-master) Entering BACKUP STATE (init)');
      if (this.vrrpFault !== null || ha.active !== 'active') log.push(this.vrrpFault ?? 'Track process haproxy_running: quorum lost', '(VI-kube-master) Entering FAULT STATE');
      else if (holds) log.push('(VI-kube-master) Entering MASTER STATE');
    }
    const serving = ha.active === 'active' && ha.loaded !== null;
    const servers = serving ? [...ha.loaded!.matchAll(/^\s*server (\S+) /gm)].map((m) => m[1]!) : [];
    const header = '# pxname,svname,status,check_status,';
    return [
      '@@KHA-VRRP',
      `ActiveState=${k.active}`,
      '@@KHA-VRRP-LOG',
      ...log,
      '@@KHA-SERVE',
      serving ? '200' : '000',
      '@@KHA-STATS',
      ...(serving ? [header, ...servers.map((n) => (this.backendsDown[n] ? `kube-master,${n},DOWN,* ${this.backendsDown[n]},` : `kube-master,${n},UP,L7OK,`))] : []),
      '',
    ].join('\n');
  }

  private kubectlAnswer(): { output: string; rc: number } {
    const vip = this.cluster.spec.vip;
    let mode = this.kubectl;
    if (mode === 'auto') {
      const serving = this.cluster.placement().some((p) => {
        const h = this.cluster.host(p.host).units.haproxy;
        return h.active === 'active' && h.loaded !== null;
      });
      mode = serving ? 'ok' : 'refused';
    }
    if (typeof mode === 'object') return mode;
    switch (mode) {
      case 'ok':
        return { output: KUBECTL_OK, rc: 0 };
      case 'x509':
        return { output: KUBECTL_X509(vip), rc: 1 };
      case 'refused':
        return { output: `Client Version: ${SERVER_VERSION}\nKustomize Version: v5.0.4\n${KUBECTL_REFUSED(vip)}`, rc: 1 };
      case 'missing':
        return { output: 'kubectl: command not found on this host', rc: 127 };
    }
  }

  /** The lock command (held): free → facts; held by another run → exit 75 with its owner. */
  takeLock(c: FakeCommand, by: FakeRemote): RemoteResult | { output: string } {
    const dir = c.args[0] ?? '/run/lock';
    if (this.lockedBy !== null || (this.lockHolder !== null && this.lockHolder !== by)) {
      const owner = this.lockedBy ?? `kha-deploy (fake connection #${this.lockHolder!.id})`;
      return fail(75, `another kha-deploy run holds ${dir}/kha-deploy.lock:\n${owner}\n`);
    }
    if (!c.script.includes('# kha-deploy facts')) throw new UnexpectedCommand(this.name, 'the lock script does not embed the facts script', c);
    this.lockHolder = by;
    // The preflight's anonymous /readyz probe rides along with the facts when the runner asks for it.
    const readyz = c.script.includes('# kha-deploy preflight readyz') ? `@@KHA-READYZ code=${this.readyz} tool=curl\n` : '';
    // kha-deploy remove reads its own facts in the same locked command.
    const removal = c.script.includes('# kha-deploy remove facts') ? this.removalFactsText() : '';
    return { output: this.factsText() + readyz + this.vipOwnerText(c) + this.vridListenText(c) + this.authText(c) + removal };
  }

  /** Adverts a VRID listen hears here (issue 9), as `SRC VRID PRIO VERSION VIPS` (src/gates/vrid-in-use.ts). */
  vrrpAdverts: string[] = [];
  /** The vip-hold commands this host ran (add, release), in order. */
  vipHolds: string[] = [];

  /** The VRID-in-use listen (src/gates/vrid-in-use.ts): skipped where keepalived runs our VRID, else what it heard. */
  private vridListenText(c: FakeCommand): string {
    const m = /^# kha-deploy preflight vrid-in-use (\d+)$/m.exec(c.script);
    if (!m) return '';
    const conf = this.files.get(this.cluster.playbook.files.keepalived.path) ?? '';
    if (this.units.keepalived.active === 'active' && new RegExp(`^\\s*virtual_router_id\\s+${m[1]}\\s*$`, 'm').test(conf)) return '@@KHA-VRRP skip\n';
    return `@@KHA-VRRP started /tmp/kha-deploy-vrrp.${this.name}\n`;
  }

  /** What the listener started by the lock command heard, collected later (src/gates/vrid-in-use.ts vridCollectScript). */
  private vridCollected(): string {
    return [...this.vrrpAdverts.map((a) => `@@KHA-VRRP adv ${a}`), '@@KHA-VRRP listened', '@@KHA-VRRP done', ''].join('\n');
  }

  /** Issue 9: the salted hash of keepalived.conf's auth_pass (src/runner/rollout.ts authProbeScript), when asked. */
  private authText(c: FakeCommand): string {
    const m = /^# kha-deploy preflight vrrp-auth (\S+)$/m.exec(c.script);
    if (!m) return '';
    const conf = this.files.get(this.cluster.playbook.files.keepalived.path) ?? '';
    const pass = /^\s*auth_pass\s+(\S+)/m.exec(conf)?.[1] ?? '';
    return `@@KHA-AUTH ${sha256Hex(`${m[1]} ${pass}`)}\n`;
  }

  /** MAC of this host's interface (issue 9: the VIP-owner preflight); derived from the name unless set. */
  mac: string | null = null;

  /** The VIP-owner preflight's lines (src/gates/vip-owner.ts): the holder says self, the others print `neighbour` (ip neigh), every host its MAC. */
  private vipOwnerText(c: FakeCommand): string {
    if (!c.script.includes('# kha-deploy preflight vip-owner')) return '';
    const mac = this.mac ?? `02:00:00:00:00:${(this.cluster.all().indexOf(this) + 1).toString(16).padStart(2, '0')}`;
    const holds = this.cluster.placement().some((p) => p.host === this.name);
    const lines = [holds ? '@@KHA-VIPNEIGH self' : this.neighbour ? `@@KHA-VIPNEIGH ${this.neighbour}` : '', `@@KHA-LINK ${this.routeInterface} ${mac}`];
    return lines.filter(Boolean).join('\n') + '\n';
  }

  /** Fault hooks the connection consults. */
  connectionFaults(): { lost(c: FakeCommand, count: number): boolean; hangFor(c: FakeCommand): HangFault | undefined } {
    return {
      lost: (c, count) => {
        if (this.loseAt !== null && count >= this.loseAt) {
          this.loseAt = null;
          return true;
        }
        if (this.loseOn && c.kind === this.loseOn.kind && (!this.loseOn.match || this.loseOn.match(c))) {
          this.loseOn = null;
          return true;
        }
        return false;
      },
      hangFor: (c) => {
        const h = this.hangs.find((x) => x.remaining > 0 && x.kind === c.kind && (!x.match || x.match(c)));
        if (h) h.remaining--;
        return h;
      },
    };
  }

  /** Bring this host to the converged state the playbook describes (packages, files, units, applied hashes). */
  converge(): this {
    const { spec, playbook } = this.cluster;
    for (const k of PACKAGE_KEYS) if (!this.installed(k)) this.packages.add(playbook.packages[k]);
    this.dirs.add(playbook.runDir);
    const iface = this.spec.vipInterface ?? this.routeInterface;
    // Rendered from this host's own facts (versions, exporter), as the planner does.
    const facts = parseFacts(this.name, this.factsText(), spec.vip);
    const haproxy = renderHaproxy(spec, playbook, facts);
    const keepalived = renderKeepalived(spec, this.spec, iface, playbook, facts);
    this.files.set(playbook.files.haproxy.path, haproxy);
    this.files.set(playbook.files.keepalived.path, keepalived);
    this.files.set(playbook.files.tmpfiles.path, renderTmpfiles(playbook));
    for (const [u, content] of [['haproxy', haproxy], ['keepalived', keepalived]] as const) {
      this.units[u] = { active: 'active', enabled: 'enabled', mainPid: ++this.pidSeq, loaded: content };
      this.files.set(`${STATE_DIR}/${u}.applied`, `${sha256Hex(content)}\n`);
    }
    return this;
  }
}

/** The keepalived.conf.* fact lines factsScript prints for a keepalived.conf (issue 9: the instance keepalived runs). */
function keepalivedConfLines(conf: string | undefined): string[] {
  if (conf === undefined) return [];
  const out: string[] = [];
  const first = (key: string, re: RegExp) => {
    const m = re.exec(conf);
    if (m) out.push(`keepalived.conf.${key}=${m[1]}`);
  };
  first('priority', /^\s*priority\s+(\d+)\s*$/m);
  first('vrid', /^\s*virtual_router_id\s+(\d+)\s*$/m);
  first('interface', /^\s*interface\s+([A-Za-z0-9_.:@-]+)\s*$/m);
  first('unicast_src_ip', /^\s*unicast_src_ip\s+([0-9A-Fa-f.:]+)\s*$/m);
  first('vip', /^\s*([0-9A-Fa-f.:]+)\/\d+\s+dev\s/m);
  return out;
}

function ok(stdout: string): RemoteResult {
  return { code: 0, signal: null, stdout, stderr: '' };
}

function fail(code: number, stderr: string, stdout = ''): RemoteResult {
  return { code, signal: null, stdout, stderr };
}

function ipv4Broadcast(ip: string, prefix: number): string {
  const n = ip.split('.').reduce((a, o) => (a << 8) | Number(o), 0) >>> 0;
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  const b = (n | ~mask) >>> 0;
  return [24, 16, 8, 0].map((s) => (b >>> s) & 255).join('.');
}

/** One `ip -o addr show` line as iproute2 prints it (see test/fixtures/facts/*.txt). */
function addrLine(index: number, name: string, cidr: string, isVip: boolean): string {
  const [ip, p] = cidr.split('/') as [string, string];
  const tail = '\\       valid_lft forever preferred_lft forever';
  if (isIPv6(ip)) {
    const scope = ip === '::1' ? 'host noprefixroute ' : /^fe80:/i.test(ip) ? 'link ' : isVip ? 'global nodad ' : 'global ';
    return `${index}: ${name}    inet6 ${cidr} scope ${scope}${tail}`;
  }
  if (name === 'lo') return `${index}: lo    inet ${cidr} scope host lo${tail}`;
  if (isVip || p === '32') return `${index}: ${name}    inet ${cidr} scope global ${name}${tail}`;
  return `${index}: ${name}    inet ${cidr} brd ${ipv4Broadcast(ip, Number(p))} scope global ${name}${tail}`;
}

/** A command the model does not understand: a test failure, never a host's answer. */
export class UnexpectedCommand extends Error {
  constructor(host: string, why: string, c: Pick<FakeCommand, 'script'>) {
    super(`fake host ${host}: ${why}\n--- script:\n${c.script.split('\n').slice(0, 5).join('\n')}`);
    this.name = 'UnexpectedCommand';
  }
}

/** `# kha-deploy KIND ARG…` → [kind, args] (words %-decoded, a lone % is ''). */
export function parseTag(script: string): { kind: string; args: string[] } | undefined {
  const first = script.split('\n', 1)[0] ?? '';
  const m = /^# kha-deploy (\S+(?: \S+)*)$/.exec(first);
  if (!m) return undefined;
  const words = m[1]!.split(' ').map((w) => (w === '%' ? '' : w.replace(/%([0-9a-f]{2})/gi, (_, h: string) => String.fromCharCode(parseInt(h, 16)))));
  return { kind: words[0]!, args: words.slice(1) };
}

/** One connection to a fake host: counts, records and answers commands like src/ssh/session.ts. */
export class FakeRemote implements Remote {
  readonly id = ++remoteIds;
  readonly host: string;
  private count = 0;
  closed = false;
  lost = false;

  constructor(
    readonly cluster: FakeCluster,
    readonly fake: FakeHost,
  ) {
    this.host = fake.name;
  }

  get commandCount(): number {
    return this.count;
  }

  run(script: string, opts: RunOptions = {}): Promise<RemoteResult> {
    return this.send(script, opts, false) as Promise<RemoteResult>;
  }

  async hold(script: string, readyMarker: string, opts: HoldOptions = {}): Promise<HeldCommand | RemoteResult> {
    if (!readyMarker) throw new Error('hold() needs a ready marker');
    return this.send(script, opts, true);
  }

  async close(): Promise<void> {
    this.closed = true;
    // sshd closes the held channel: cat sees EOF and the kernel drops the flock.
    if (this.fake.lockHolder === this) this.fake.lockHolder = null;
  }

  private what(script: string, label?: string): string {
    return label ?? script.split('\n', 1)[0] ?? '';
  }

  private async send(script: string, opts: RunOptions & HoldOptions, hold: boolean): Promise<HeldCommand | RemoteResult> {
    const what = this.what(script, opts.label);
    if (this.closed || this.lost) {
      throw new ConnectError(this.host, 'ssh', `connection to ${this.fake.target()} ${this.closed ? 'was closed by kha-deploy' : 'was lost'} while running \`${what}\``);
    }
    this.count++;
    const tag = parseTag(script);
    const c: FakeCommand = {
      seq: this.cluster.log.length,
      host: this.host,
      session: this.id,
      kind: tag?.kind ?? '(untagged)',
      args: tag?.args ?? [],
      script,
      signal: opts.signal !== undefined,
      hold,
      ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}),
      ...(opts.label !== undefined ? { label: opts.label } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    };
    this.cluster.log.push(c);
    this.fake.commands.push(c);
    const reject = (err: Error): never => {
      c.rejected = err.message;
      throw err;
    };
    // Answer asynchronously, as a network would: concurrent commands interleave between commands.
    await new Promise<void>((r) => setImmediate(r));
    if (this.cluster.latencyMs > 0) await new Promise<void>((r) => setTimeout(r, this.cluster.latencyMs));

    const faults = this.fake.connectionFaults();
    if (faults.lost(c, this.count)) {
      this.lost = true;
      if (this.fake.lockHolder === this) this.fake.lockHolder = null;
      reject(
        new ConnectError(this.host, 'ssh', `connection to ${this.fake.target()} was lost (read ECONNRESET) while running \`${what}\``, {
          hint: 'the host stopped answering or sshd went away: check the host, then rerun (kha-deploy picks up where it stopped)',
        }),
      );
    }
    if (this.closed) reject(new ConnectError(this.host, 'ssh', `connection to ${this.fake.target()} was closed by kha-deploy while running \`${what}\``));
    if (!tag || !(KNOWN_KINDS as readonly string[]).includes(tag.kind)) {
      const err = new UnexpectedCommand(this.host, tag ? `unknown command tag '${tag.kind}'` : 'a script without a `# kha-deploy KIND` first line', c);
      this.cluster.unexpected.push(err.message);
      reject(err);
    }
    if (opts.signal?.aborted) reject(new InterruptedError(`interrupted while running \`${what}\` on ${this.host}`));
    const hang = faults.hangFor(c);
    if (hang) await this.hang(c, hang, what, opts).catch(reject);

    try {
      if (c.kind === 'lock') {
        if (!hold) throw new UnexpectedCommand(this.host, 'the lock script must be held (hold()), not run', c);
        const r = this.fake.takeLock(c, this);
        if ('code' in r) {
          c.code = r.code;
          return r;
        }
        c.code = 0;
        let released = false;
        return {
          output: r.output,
          release: async () => {
            if (released) return;
            released = true;
            this.fake.lockReleases++;
            if (this.fake.lockHolder === this) this.fake.lockHolder = null;
          },
        };
      }
      if (hold) throw new UnexpectedCommand(this.host, `only the lock is held; got a held '${c.kind}'`, c);
      const res = this.fake.execute(c);
      c.code = res.code;
      this.cluster.afterCommand();
      return res;
    } catch (err) {
      if (err instanceof UnexpectedCommand) this.cluster.unexpected.push(err.message);
      return reject(err as Error);
    }
  }

  /** A command that never finishes: ends at its deadline, on abort, or (no deadline given) after the safety time. */
  private hang(c: FakeCommand, h: HangFault, what: string, opts: RunOptions & HoldOptions): Promise<never> {
    return new Promise<never>((_, rejectHang) => {
      const timers: NodeJS.Timeout[] = [];
      const done = (err: Error) => {
        timers.forEach(clearTimeout);
        opts.signal?.removeEventListener('abort', onAbort);
        rejectHang(err);
      };
      const onAbort = () => done(new InterruptedError(`interrupted while running \`${what}\` on ${this.host}`));
      if (opts.signal) opts.signal.addEventListener('abort', onAbort, { once: true });
      if (opts.timeoutMs !== undefined) {
        const ms = opts.timeoutMs;
        timers.push(setTimeout(() => done(new DeadlineError(this.host, 'ssh', ms, h.output, { what: `\`${what}\`` })), ms));
      }
      timers.push(
        setTimeout(() => {
          const msg = `fake host ${this.host}: '${c.kind}' hung and its caller gave no deadline (timeoutMs) and no abort signal`;
          this.cluster.unexpected.push(msg);
          done(new Error(msg));
        }, this.cluster.hangSafetyMs),
      );
    });
  }
}

export class FakeCluster {
  readonly hosts = new Map<string, FakeHost>();
  /** Every command of every host, in the order sent. */
  readonly log: FakeCommand[] = [];
  /** Commands the model did not understand, hangs nobody ended: each is a test failure. */
  readonly unexpected: string[] = [];
  /** Every connection opened (FakeRemote), in order. */
  readonly remotes: FakeRemote[] = [];
  /** Forced VIP holders (split brain, nobody); null: the election decides. */
  forcedVip: string[] | null = null;
  /**
   * VRRP as RFC 5798 has it (issue 9): the master holding the VIP keeps it against an equal priority, and
   * loses it only to a strictly higher one. Off (default): the highest priority wins at once, a tie goes to
   * the first host. The holder is remembered between observations (see placement()).
   */
  vrrpHoldOnTie = false;
  private lastHolder: string | null = null;
  /**
   * Issue 9: VRRP instances. On: masters hear each other only when the config their keepalived LOADED has
   * the same virtual_router_id, auth_pass, VIP and multicast/unicast; each such group elects its own
   * holder (several groups with holders: the VIP on several masters, a split brain). Off (default): one instance.
   */
  vrrpInstances = false;
  /** The VIP the facts script asks its route for (a vip change: the inventory's new one); default spec.vip. */
  factsVip: string | undefined;
  private lastHolders = new Map<string, string>();
  /** Every distinct VIP placement (holders, sorted), recorded after each command (see afterCommand). */
  readonly vipTrace: string[][] = [];
  /** Delay of every answer (default 0: next macrotask). */
  latencyMs = 0;
  /** A hung command without a deadline or signal fails after this long (keeps a test from hanging). */
  hangSafetyMs = 1000;
  private backupSeq = 0;

  constructor(
    readonly spec: ClusterSpec,
    readonly playbook: Playbook,
    opts: { hosts?: Record<string, FakeHostOptions> } = {},
  ) {
    for (const h of spec.hosts) this.hosts.set(h.name, new FakeHost(this, h, opts.hosts?.[h.name]));
  }

  host(name: string): FakeHost {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`fake cluster has no host ${name}`);
    return h;
  }

  all(): FakeHost[] {
    return [...this.hosts.values()];
  }

  /** RolloutOptions.connect: a new connection per call (rejects with the host's connect fault). */
  connect = async (spec: HostSpec): Promise<Remote> => {
    await new Promise<void>((r) => setImmediate(r));
    const h = this.host(spec.name);
    if (h.connectError) throw h.connectError;
    return this.session(spec.name);
  };

  /** A connection to `name`, synchronously (HostApplier / waitForGate tests). */
  session(name: string): FakeRemote {
    const r = new FakeRemote(this, this.host(name));
    this.remotes.push(r);
    return r;
  }

  /** Every master converged as the playbook describes (the election then places the VIP on the primary). */
  converge(): this {
    for (const h of this.all()) h.converge();
    return this;
  }

  /** Force the VIP onto these hosts (several: split brain; []: nobody); null gives it back to the election. */
  forceVip(holders: string[] | null): this {
    this.forcedVip = holders;
    return this;
  }

  /** Called after every command a fake host answered: keeps vipTrace. */
  afterCommand(): void {
    const h = this.vipHolders().sort();
    if (JSON.stringify(this.vipTrace.at(-1)) !== JSON.stringify(h)) this.vipTrace.push(h);
  }

  /** The VRRP instance a loaded keepalived.conf belongs to (vrrpInstances). */
  static instanceKey(conf: string): string {
    const get = (re: RegExp) => re.exec(conf)?.[1] ?? '';
    return [
      get(/^\s*virtual_router_id\s+(\d+)/m),
      get(/^\s*auth_pass\s+(\S+)/m),
      get(/^\s*([0-9A-Fa-f.:]+)\/\d+\s+dev\s/m),
      /^\s*unicast_src_ip\s/m.test(conf) ? 'unicast' : 'multicast',
    ].join('|');
  }

  /** Where the VIP is: forced, or the election among hosts whose keepalived and haproxy (track script) run. */
  placement(): { host: string; iface: string; prefix: number; vip?: string }[] {
    const v6 = isIPv6(this.spec.vip);
    const defaultPrefix = v6 ? 128 : 32;
    if (this.forcedVip !== null) return this.forcedVip.map((n) => ({ host: n, iface: this.host(n).routeInterface, prefix: defaultPrefix }));
    if (this.vrrpInstances) return this.instancePlacement(defaultPrefix);
    let best: { host: string; iface: string; prefix: number; priority: number } | undefined;
    let held: typeof best;
    for (const h of this.all()) {
      const k = h.units.keepalived;
      if (k.active !== 'active' || h.units.haproxy.active !== 'active' || k.loaded === null) continue;
      const prio = /^\s*priority\s+(\d+)/m.exec(k.loaded);
      const iface = /^\s*interface\s+(\S+)/m.exec(k.loaded);
      if (!prio || !iface) continue;
      const esc = this.spec.vip.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      const prefix = new RegExp(`${esc}/(\\d+)`).exec(k.loaded);
      const cand = { host: h.name, iface: iface[1]!, prefix: prefix ? Number(prefix[1]) : defaultPrefix, priority: Number(prio[1]) };
      if (!best || cand.priority > best.priority) best = cand;
      if (this.vrrpHoldOnTie && h.name === this.lastHolder) held = cand;
    }
    if (this.vrrpHoldOnTie) {
      if (held && best && held.priority >= best.priority) best = held;
      this.lastHolder = best?.host ?? null;
    }
    return best ? [{ host: best.host, iface: best.iface, prefix: best.prefix }] : [];
  }

  /** placement() with vrrpInstances: one election per instance (VRRP's tie rule always: a holder keeps the VIP against an equal priority). */
  private instancePlacement(defaultPrefix: number): { host: string; iface: string; prefix: number; vip?: string }[] {
    const groups = new Map<string, { host: string; iface: string; prefix: number; priority: number; vip?: string }[]>();
    for (const h of this.all()) {
      const k = h.units.keepalived;
      if (k.active !== 'active' || h.units.haproxy.active !== 'active' || k.loaded === null) continue;
      const prio = /^\s*priority\s+(\d+)/m.exec(k.loaded);
      const iface = /^\s*interface\s+(\S+)/m.exec(k.loaded);
      if (!prio || !iface) continue;
      const prefix = /^\s*([0-9A-Fa-f.:]+)\/(\d+)\s+dev\s/m.exec(k.loaded);
      const key = FakeCluster.instanceKey(k.loaded);
      const list = groups.get(key) ?? [];
      list.push({ host: h.name, iface: iface[1]!, prefix: prefix ? Number(prefix[2]) : defaultPrefix, priority: Number(prio[1]), ...(prefix ? { vip: prefix[1]! } : {}) });
      groups.set(key, list);
    }
    const out: { host: string; iface: string; prefix: number }[] = [];
    const holders = new Map<string, string>();
    for (const [key, list] of groups) {
      let best = list[0]!;
      for (const c of list) if (c.priority > best.priority) best = c;
      const held = list.find((c) => c.host === this.lastHolders.get(key));
      if (held && held.priority >= best.priority) best = held;
      holders.set(key, best.host);
      out.push({ host: best.host, iface: best.iface, prefix: best.prefix, ...(best.vip ? { vip: best.vip } : {}) });
    }
    this.lastHolders = holders;
    return out;
  }

  /** Hosts holding the VIP in the model right now. */
  vipHolders(): string[] {
    return this.placement().map((p) => p.host);
  }

  /** Commands of these kinds in the cluster-wide log (e.g. ['write', 'service']). */
  logOf(...kinds: CommandKind[]): FakeCommand[] {
    return this.log.filter((c) => (kinds as string[]).includes(c.kind));
  }

  nextBackupStamp(): string {
    return `20260101T000000.${String(++this.backupSeq).padStart(9, '0')}Z`;
  }

  /** Throws when the model met a command it does not understand (call at the end of each test). */
  assertNoSurprises(): void {
    if (this.unexpected.length > 0) throw new Error(`the fake hosts met unexpected commands:\n${this.unexpected.join('\n')}`);
  }
}
