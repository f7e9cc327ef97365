// Test helper for the kha-deploy lab (docker-compose.test.yml, lab/up.sh): start/stop the lab,
// run commands in its hosts, and read what the hosts show (VIP holders, unit state, sshd log).
// Commands run through `docker exec` (out of band: they open no SSH connection), except
// labSsh(), which uses the system ssh client exactly as an operator would.
// Every child process gets an argument vector, never a shell string built from input; the only
// shell is `bash -c SCRIPT` inside a host, where SCRIPT is the caller's own test code.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const STATE_DIR = join(ROOT, 'lab', '.state');

export interface LabHost {
  /** Host name inside the lab and in the inventory: master1, master2, master3. */
  readonly name: string;
  /** Fixed address on the lab network. */
  readonly address: string;
  /** Docker container name. */
  readonly container: string;
}

export const lab = {
  project: 'kha-lab',
  network: 'kha-lab_labnet',
  subnet: '172.16.86.0/24',
  gateway: '172.16.86.1',
  vip: '172.16.86.100',
  /** A second, free VIP that the apiserver certificates also list (lab/lib.sh SPARE_VIP; not with `vipInCert: false`): for a change of `vip`. */
  spareVip: '172.16.86.101',
  hosts: [
    { name: 'master1', address: '172.16.86.11', container: 'kha-lab-master1' },
    { name: 'master2', address: '172.16.86.12', container: 'kha-lab-master2' },
    { name: 'master3', address: '172.16.86.13', container: 'kha-lab-master3' },
  ] as readonly LabHost[],
  /** Users in every host: `kha` has passwordless sudo, `khapw` needs its password for sudo, root logs in by key too. */
  users: { sudo: 'kha', sudoWithPassword: 'khapw', sudoPassword: 'khapw-lab-pass', root: 'root' },
  stateDir: STATE_DIR,
  /** Inventory for `kha-deploy -i`: ansible_user=kha, become, the lab key (absolute path). */
  inventoryPath: join(STATE_DIR, 'inventory.ini'),
  /** Same hosts, ansible_user=root, no become. */
  rootInventoryPath: join(STATE_DIR, 'inventory-root.ini'),
  /** Plain known_hosts lines (IP keytype key) read from the hosts' own key files. */
  knownHostsPath: join(STATE_DIR, 'known_hosts'),
  /** Lab SSH private key (ed25519, no passphrase), authorized for root, kha and khapw. */
  keyPath: join(STATE_DIR, 'id_ed25519'),
  /** Lab CA certificate (signs the apiserver serving certificates and the admin client certificate). */
  caPath: join(STATE_DIR, 'certs', 'ca.crt'),
  /** The RPM-family hosts' package repository (running only while a host is RPM-family: `LabUpOptions.rpm`). */
  rpmRepo: { container: 'kha-lab-rpmrepo', address: '172.16.86.20', port: 8080 },
  /** The jump host (running only while asked for: `LabUpOptions.bastion`): the host image, sshd, user kha by the lab key; no apiserver, not a master, in no inventory. */
  bastion: { name: 'bastion', address: '172.16.86.14', container: 'kha-lab-bastion' } as LabHost,
} as const;

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface UnitInfo {
  loadState: string;
  activeState: string;
  subState: string;
  unitFileState: string;
  mainPid: number;
  nRestarts: number;
  /** systemd's ActiveEnterTimestamp, in microseconds and UTC ("" when never active). */
  activeEnterTimestamp: string;
  /** systemd's ExecMainStartTimestamp, in microseconds and UTC ("" when never started). */
  execMainStartTimestamp: string;
}

interface RunOpts {
  stdin?: string;
  timeoutMs?: number;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/** Runs a program with an argument vector; resolves with its exit status and output (never rejects on exit != 0). */
function run(cmd: string, args: readonly string[], opts: RunOpts = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? process.env,
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += `\n[lab helper] ${cmd} timed out after ${opts.timeoutMs ?? 120_000} ms`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (opts.stdin !== undefined) {
      child.stdin!.on('error', () => {}); // the program may exit without reading its input
      child.stdin!.end(opts.stdin);
    }
  });
}

function describe(cmd: string, args: readonly string[], r: ExecResult): string {
  return `${cmd} ${args.join(' ')} -> exit ${r.code}${r.signal ? ` (${r.signal})` : ''}\n${r.stdout}${r.stderr}`;
}

async function runOk(cmd: string, args: readonly string[], opts: RunOpts = {}): Promise<ExecResult> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(describe(cmd, args, r));
  return r;
}

/** The lab host called `name` (master1..3); throws for any other name. */
export function labHost(name: string): LabHost {
  const h = lab.hosts.find((x) => x.name === name);
  if (!h) throw new Error(`unknown lab host ${JSON.stringify(name)} (hosts: ${lab.hosts.map((x) => x.name).join(', ')})`);
  return h;
}

function hostNames(names?: readonly string[]): string[] {
  const list = names && names.length ? [...names] : lab.hosts.map((h) => h.name);
  for (const n of list) labHost(n);
  return list;
}

const UNIT_RE = /^[A-Za-z0-9@._:\\-]+$/;
function checkUnit(unit: string): string {
  if (!UNIT_RE.test(unit) || unit.startsWith('-')) throw new Error(`not a unit name: ${JSON.stringify(unit)}`);
  return unit;
}

// ---------------------------------------------------------------------------------------------
// Lab lifecycle (lab/up.sh and lab/down.sh do the work, so the command line and tests agree)

export interface LabUpOptions {
  /** Serving certificates list the VIP in subjectAltName (default true). false reproduces the
   * operator mistake of certificates without the VIP; changing it recreates every host. */
  vipInCert?: boolean;
  timeoutMs?: number;
  /** Hosts that are RPM-family (dnf + rpm, no apt: lab/image-rpm), with the RPM repository running.
   * Default none: every call without it brings the lab back to all-Debian (hosts of the other family are recreated). */
  rpm?: readonly string[];
  /** Also run the jump host `lab.bastion` (`lab/up.sh --bastion`). Default false: every call without it removes the bastion. */
  bastion?: boolean;
}

function certFlag(opts: LabUpOptions): string {
  return opts.vipInCert === false ? '--no-vip-cert' : '--vip-cert';
}

function rpmFlags(opts: LabUpOptions): string[] {
  return (opts.rpm ?? []).flatMap((h) => ['--rpm', labHost(h).name]);
}

function bastionFlag(opts: LabUpOptions): string[] {
  return opts.bastion ? ['--bastion'] : [];
}

async function upScript(args: string[], timeoutMs: number): Promise<void> {
  const r = await run('bash', [join(ROOT, 'lab', 'up.sh'), ...args], { timeoutMs });
  if (r.code !== 0) throw new Error(`lab/up.sh ${args.join(' ')} failed (exit ${r.code}):\n${r.stderr.split('\n').slice(-40).join('\n')}`);
}

/** Brings the lab up (building images when missing), or leaves a running lab as it is. */
export async function labUp(opts: LabUpOptions = {}): Promise<void> {
  await upScript([certFlag(opts), ...rpmFlags(opts), ...bastionFlag(opts)], opts.timeoutMs ?? 900_000);
}

/** Removes the lab hosts and network (images and lab/.state/ are kept). */
export async function labDown(): Promise<void> {
  await runOk('bash', [join(ROOT, 'lab', 'down.sh')], { timeoutMs: 120_000 });
}

/**
 * Replaces hosts (all when none named) with fresh containers from the image: no keepalived or
 * haproxy, new SSH host keys (known_hosts is rewritten), VIP held by nobody. Waits until booted.
 */
export async function resetHosts(names?: readonly string[], opts: LabUpOptions = {}): Promise<void> {
  await upScript(['--fresh', certFlag(opts), ...rpmFlags(opts), ...bastionFlag(opts), ...hostNames(names)], opts.timeoutMs ?? 300_000);
}

/** Waits until systemd in each host finished booting and ssh + kube-apiserver are active. */
export async function waitBooted(names?: readonly string[], timeoutMs = 120_000): Promise<void> {
  await upScript(['--wait', ...hostNames(names)], timeoutMs);
}

/** Throws a loud error unless every lab host runs and the lab's key, known_hosts and inventory exist. */
export async function requireLab(): Promise<void> {
  const hint = 'bring it up with `npm run lab:up` (bash lab/up.sh); `npm run test:e2e` does that itself';
  const missing = [lab.keyPath, lab.knownHostsPath, lab.inventoryPath, lab.rootInventoryPath].filter((p) => !existsSync(p));
  let states: ExecResult;
  try {
    states = await run('docker', ['inspect', '-f', '{{.Name}} {{.State.Status}}', ...lab.hosts.map((h) => h.container)], { timeoutMs: 30_000 });
  } catch (err) {
    throw new Error(`THE LAB IS NOT UP: cannot run docker (${(err as Error).message}); ${hint}`);
  }
  const running = new Set(
    states.stdout
      .split('\n')
      .filter((l) => l.endsWith(' running'))
      .map((l) => l.split(' ')[0]!.replace(/^\//, '')),
  );
  const down = lab.hosts.filter((h) => !running.has(h.container)).map((h) => h.name);
  if (down.length || missing.length) {
    const why = [down.length ? `hosts not running: ${down.join(', ')}` : '', missing.length ? `missing: ${missing.join(', ')}` : '', states.code !== 0 ? states.stderr.trim() : '']
      .filter(Boolean)
      .join('; ');
    throw new Error(`THE LAB IS NOT UP (${why}); ${hint}`);
  }
  // Every file starts on a network where VRRP multicast passes (lab/up.sh repairs Docker's rule
  // order): a lab that drops it fails here, at once, not in every gate after 90 s.
  const net = await run('bash', [join(ROOT, 'lab', 'up.sh'), '--net'], { timeoutMs: 60_000 });
  if (net.code !== 0) throw new Error(`THE LAB'S NETWORK DROPS VRRP MULTICAST between the hosts (lab/up.sh --net, exit ${net.code}):\n${net.stderr.trim()}`);
}

// ---------------------------------------------------------------------------------------------
// Looking into hosts

export interface HostExecOptions {
  /** Written to the script's standard input. */
  stdin?: string;
  /** User to run as inside the host (default root). */
  user?: string;
  timeoutMs?: number;
}

/** Runs `bash -c script` in the host through `docker exec` (no SSH connection). Never rejects on exit != 0. */
export function hostExec(host: string, script: string, opts: HostExecOptions = {}): Promise<ExecResult> {
  const h = labHost(host);
  const args = ['exec'];
  if (opts.stdin !== undefined) args.push('-i');
  if (opts.user !== undefined) args.push('-u', opts.user);
  args.push(h.container, 'bash', '-c', script);
  return run('docker', args, { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 120_000 });
}

/** Runs `bash -c script` in the bastion (`lab.bastion`) through `docker exec`, as root. Never rejects on exit != 0. */
export function bastionExec(script: string, opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
  return run('docker', ['exec', lab.bastion.container, 'bash', '-c', script], { timeoutMs: opts.timeoutMs ?? 60_000 });
}

async function hostExecOk(host: string, script: string, ...argv: string[]): Promise<ExecResult> {
  // Arguments travel as positional parameters ($1, $2, ...), never spliced into the script.
  const h = labHost(host);
  const args = ['exec', h.container, 'bash', '-c', script, 'lab-helper', ...argv];
  return runOk('docker', args, { timeoutMs: 120_000 });
}

export interface SshOptions {
  /** Login user (default kha). */
  user?: string;
  stdin?: string;
  timeoutMs?: number;
  /** Extra ssh options, e.g. ['-o', 'ConnectTimeout=3'] (they win over the defaults). */
  sshArgs?: string[];
}

/** Runs a command over SSH with the system ssh client, the lab key and the lab known_hosts (strict checking). */
export function labSsh(host: string, command: string, opts: SshOptions = {}): Promise<ExecResult> {
  const h = labHost(host);
  const args = [
    ...(opts.sshArgs ?? []),
    '-i', lab.keyPath,
    '-o', 'IdentitiesOnly=yes',
    '-o', 'BatchMode=yes',
    '-o', 'StrictHostKeyChecking=yes',
    '-o', `UserKnownHostsFile=${lab.knownHostsPath}`,
    '-o', 'GlobalKnownHostsFile=/dev/null',
    '-o', 'ConnectTimeout=10',
    '-o', 'LogLevel=ERROR',
    '-l', opts.user ?? lab.users.sudo,
    h.address,
    '--',
    command,
  ];
  return run('ssh', args, { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 60_000 });
}

/** Names of the hosts whose `ip -o addr` shows the VIP, in host order. Unreachable or stopped hosts hold nothing. */
export async function vipHolders(): Promise<string[]> {
  const seen = await Promise.all(
    lab.hosts.map(async (h) => {
      const r = await run('docker', ['exec', h.container, 'ip', '-o', '-4', 'addr', 'show'], { timeoutMs: 30_000 });
      return r.code === 0 && r.stdout.split('\n').some((l) => l.includes(` inet ${lab.vip}/`));
    }),
  );
  return lab.hosts.filter((_, i) => seen[i]).map((h) => h.name);
}

/** What `systemctl show` says about a unit (timestamps with microseconds, UTC). */
export async function unitInfo(host: string, unit: string): Promise<UnitInfo> {
  const props = 'LoadState,ActiveState,SubState,UnitFileState,MainPID,NRestarts,ActiveEnterTimestamp,ExecMainStartTimestamp';
  const r = await hostExecOk(host, 'exec systemctl show --timestamp=us+utc -p "$1" -- "$2"', props, checkUnit(unit));
  const kv = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) kv.set(line.slice(0, i), line.slice(i + 1));
  }
  const get = (k: string) => kv.get(k) ?? '';
  return {
    loadState: get('LoadState'),
    activeState: get('ActiveState'),
    subState: get('SubState'),
    unitFileState: get('UnitFileState'),
    mainPid: Number(get('MainPID') || 0),
    nRestarts: Number(get('NRestarts') || 0),
    activeEnterTimestamp: get('ActiveEnterTimestamp'),
    execMainStartTimestamp: get('ExecMainStartTimestamp'),
  };
}

/** `systemctl stop UNIT` in the host; throws when systemctl fails. */
export async function stopUnit(host: string, unit: string): Promise<void> {
  await hostExecOk(host, 'exec systemctl stop -- "$1"', checkUnit(unit));
}

/** `systemctl start UNIT` in the host; throws when systemctl fails. */
export async function startUnit(host: string, unit: string): Promise<void> {
  await hostExecOk(host, 'exec systemctl start -- "$1"', checkUnit(unit));
}

/**
 * Sends a signal to a unit's processes (`systemctl kill`), as a crash would: SIGKILL by default,
 * to every process of the unit (`whom: 'main'` for the main process only). The unit's Restart=
 * policy then applies.
 */
export async function killUnit(host: string, unit: string, signal: string = 'SIGKILL', opts: { whom?: 'main' | 'all' } = {}): Promise<void> {
  if (!/^(SIG[A-Z0-9+]+|[0-9]+)$/.test(signal)) throw new Error(`not a signal: ${JSON.stringify(signal)}`);
  await hostExecOk(host, 'exec systemctl kill --kill-whom="$1" --signal="$2" -- "$3"', opts.whom ?? 'all', signal, checkUnit(unit));
}

/** Number of "Connection from" lines sshd logged in the host (all boots): proves whether a run opened SSH connections. */
export async function sshConnectionCount(host: string): Promise<number> {
  const r = await hostExecOk(host, 'journalctl -u ssh.service --no-pager -o cat | grep -c "^Connection from " || true');
  return Number(r.stdout.trim() || 0);
}

// ---------------------------------------------------------------------------------------------
// Network and power

/** Name of the machine-side veth of the host's eth0 (its port on the lab bridge). */
export async function hostVeth(host: string): Promise<string> {
  const r = await hostExecOk(host, 'cat /sys/class/net/eth0/iflink');
  const peer = r.stdout.trim();
  for (const dev of readdirSync('/sys/class/net')) {
    try {
      if (readFileSync(join('/sys/class/net', dev, 'ifindex'), 'utf8').trim() === peer) return dev;
    } catch {
      /* interface gone meanwhile */
    }
  }
  throw new Error(`no interface on this machine has ifindex ${peer} (peer of ${host}'s eth0)`);
}

export type CutMode = 'unplug' | 'partition';

/**
 * Cuts the host off the lab network (from every other host and from this machine), at its
 * bridge port; the host keeps eth0, its address and its routes.
 * - `unplug` (default): the cable is pulled: eth0 loses carrier (NO-CARRIER, state DOWN), as
 *   keepalived sees it (it goes to FAULT and drops the VIP).
 * - `partition`: the link stays up but the bridge port forwards nothing: a switch that stopped
 *   forwarding; the host still believes it is connected (a VIP holder keeps its VIP).
 * Undo with reconnectHost(). Docker's own `network disconnect` is not used: on reconnect the
 * interface would come back as eth1.
 */
export async function disconnectHost(host: string, opts: { mode?: CutMode } = {}): Promise<void> {
  const veth = await hostVeth(host);
  if ((opts.mode ?? 'unplug') === 'unplug') await runOk('ip', ['link', 'set', 'dev', veth, 'down']);
  else await runOk('bridge', ['link', 'set', 'dev', veth, 'state', '0']);
}

/** Puts the host back on the lab network (either cut mode), with its fixed address on eth0 as before. */
export async function reconnectHost(host: string): Promise<void> {
  const veth = await hostVeth(host);
  await runOk('ip', ['link', 'set', 'dev', veth, 'up']);
  await runOk('bridge', ['link', 'set', 'dev', veth, 'state', '3']);
}

/** Reboots the host (`docker restart`: systemd shuts down cleanly and boots again); waits until booted. */
export async function restartHost(host: string): Promise<void> {
  const h = labHost(host);
  await runOk('docker', ['restart', '-t', '10', h.container], { timeoutMs: 60_000 });
  await waitBooted([host]);
}

/** Powers the host off: `docker kill` (no clean shutdown) by default, `docker stop` with `{ clean: true }`. */
export async function stopHost(host: string, opts: { clean?: boolean } = {}): Promise<void> {
  const h = labHost(host);
  await runOk('docker', opts.clean ? ['stop', '-t', '10', h.container] : ['kill', h.container], { timeoutMs: 60_000 });
}

/** Powers a stopped host on again and waits until booted. */
export async function startHost(host: string): Promise<void> {
  const h = labHost(host);
  await runOk('docker', ['start', h.container], { timeoutMs: 60_000 });
  await waitBooted([host]);
}

/** Stops the RPM repository's container (`docker stop`): dnf on the RPM-family hosts can no longer reach it. */
export async function stopRpmRepo(): Promise<void> {
  await runOk('docker', ['stop', '-t', '5', lab.rpmRepo.container], { timeoutMs: 60_000 });
}

/** Starts the RPM repository's container again and waits until it answers HTTP on the lab network. */
export async function startRpmRepo(): Promise<void> {
  await runOk('docker', ['start', lab.rpmRepo.container], { timeoutMs: 60_000 });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = await run('bash', ['-c', 'exec 3<>"/dev/tcp/$1/$2"', 'probe', lab.rpmRepo.address, String(lab.rpmRepo.port)], { timeoutMs: 5_000 });
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`the RPM repository does not answer on ${lab.rpmRepo.address}:${lab.rpmRepo.port}`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

/** iptables rules added by dropConnections(), removed by restoreConnections(). */
const droppedRules: string[][] = [];

/**
 * Silently drops (no reset, no ICMP) every packet of the SSH connections that process `pid` on this
 * machine has open to `host`, in both directions, matched by their source ports: those connections
 * hang as after a network cut, while new connections (a second run) still work.
 * Returns the local ports cut.
 */
export async function dropConnections(host: string, pid: number): Promise<number[]> {
  const h = labHost(host);
  const ss = await runOk('ss', ['-tnpH', 'state', 'established', 'dst', `${h.address}:22`]);
  const ports = ss.stdout
    .split('\n')
    .filter((l) => l.includes(`pid=${pid},`))
    .map((l) => Number(/\s\S+:(\d+)\s+\S+:22\s/.exec(l)?.[1]))
    .filter((p) => Number.isInteger(p) && p > 0);
  if (ports.length === 0) throw new Error(`process ${pid} has no SSH connection to ${host}:\n${ss.stdout}`);
  for (const port of ports) {
    for (const rule of [
      ['OUTPUT', '-p', 'tcp', '-d', h.address, '--dport', '22', '--sport', String(port), '-j', 'DROP'],
      ['INPUT', '-p', 'tcp', '-s', h.address, '--sport', '22', '--dport', String(port), '-j', 'DROP'],
    ]) {
      await runOk('iptables', ['-I', ...rule]);
      droppedRules.push(rule);
    }
  }
  return ports;
}

/** Removes every rule dropConnections() added (the cut connections stay dead on this side). */
export async function restoreConnections(): Promise<void> {
  while (droppedRules.length > 0) {
    const rule = droppedRules.pop()!;
    await run('iptables', ['-D', ...rule]);
  }
}
