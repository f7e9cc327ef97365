// Shared data shapes of the pipeline: inventory → facts → plan → apply → gates → report.
// Pure modules exchange these plain objects; only src/ssh/ talks to hosts.

/** One master, validated. Connection values are per host (host line > [group:vars] > [all:vars]). */
export interface HostSpec {
  name: string;
  /** ansible_host, or the name when absent; an IP address or a DNS host name. */
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
  /** ansible_become: run every remote command through `sudo -n`. */
  become: boolean;
  priority: number;
  /** vip_interface from the inventory; undefined = detect from the host's route to the VIP. */
  vipInterface?: string;
  /** ansible_ssh_common_args, carried as written; not used yet (no ProxyJump support). */
  sshCommonArgs?: string;
  /** Which connection values the inventory set (they win over ~/.ssh/config); absent: unknown. */
  sshExplicit?: { address: boolean; port: boolean; user: boolean };
  /** 1-based line of the host's first definition in the inventory file. */
  line: number;
  /** The file that line is in, when not ClusterSpec.file (an inventory directory, YAML). */
  file?: string;
  /** vrrp_unicast with `address` a DNS name: the IP literal it resolved to (unicast_src_ip / unicast_peer). */
  vrrpAddress?: string;
}

/** The validated inventory: everything the run needs, nothing of other tools' variables. */
export interface ClusterSpec {
  file: string;
  /** The group the masters came from: masters | kube_master | kube-master | kube_control_plane. */
  group: string;
  vip: string;
  family: 4 | 6;
  vipPort: number;
  apiserverPort: number;
  virtualRouterId: number;
  advertInt: number;
  haproxyBalance: string;
  /** How haproxy checks each apiserver: `readyz` (GET /readyz over TLS, expect 200) or `tcp` (a TCP connect). */
  haproxyHealthCheck: 'readyz' | 'tcp';
  /** Seconds between two health checks of one apiserver (haproxy `inter`). */
  haproxyCheckInter: number;
  /** Failed checks in a row that mark an apiserver DOWN (haproxy `fall`). */
  haproxyCheckFall: number;
  /** Passed checks in a row that mark an apiserver UP again (haproxy `rise`). */
  haproxyCheckRise: number;
  /**
   * haproxy's monitor frontend, bound to 127.0.0.1 only: `/healthz` (200 while at least one apiserver
   * is UP, else 503; keepalived's check), `/stats` (`/stats;csv` for machines), `/metrics` where
   * haproxy has the Prometheus exporter.
   */
  haproxyMonitorPort: number;
  /**
   * false (vrrp_preempt=false): keepalived's `nopreempt`: a master that comes back does not take the
   * VIP back from the healthy master holding it, so after a failover the VIP is on any one master,
   * not necessarily the primary (gates then expect exactly one holder).
   */
  vrrpPreempt: boolean;
  /** Seconds a returning higher-priority master waits before taking the VIP back (`preempt_delay`); 0 = none. */
  vrrpPreemptDelay: number;
  /**
   * Weight of keepalived's check that the local haproxy can serve (negative): -(highest priority -
   * lowest priority + 1), so a master whose check fails falls below every healthy master. The same on
   * every master: when all fail the order does not change and the VIP stays. Computed by validation.
   */
  vrrpCheckWeight: number;
  kubeconfig: string;
  /**
   * vrrp_unicast=true: keepalived sends its adverts to the other masters (unicast_peer) from its own
   * address (unicast_src_ip = ansible_host, an IP literal) instead of to 224.0.0.18 / ff02::12. Absent: false.
   */
  vrrpUnicast?: boolean;
  /** Optional VRRP PASS authentication; a secret: never printed. */
  vrrpAuthPass?: string;
  /** Hosts in inventory order. */
  hosts: HostSpec[];
  /** Rollout order: primary first, then backups by descending priority. */
  order: string[];
  primary: string;
  /** Plain words: which master is the primary and why. */
  primaryReason: string;
  /** To say once before the run (e.g. ansible.cfg settings kha-deploy does not honour); absent when none. */
  warnings?: string[];
}

export type PackageManager = 'apt' | 'dnf' | 'yum';
export type ManagedUnit = 'keepalived' | 'haproxy';
/** What the packages step installs when missing: the managed units, and curl (keepalived's check of the local haproxy). */
export type PackageKey = ManagedUnit | 'curl';

export interface UnitFacts {
  /** systemctl ActiveState: active, inactive, failed, activating, … ('' when the unit does not exist). */
  active: string;
  /** systemctl UnitFileState: enabled, disabled, masked, … ('' when unknown). */
  enabled: string;
  mainPid: number;
}

export interface InterfaceFacts {
  name: string;
  /** CIDR strings as `ip -o addr` prints them, e.g. 172.30.86.11/24. */
  addrs: string[];
}

/** What one host showed in one facts command. */
export interface HostFacts {
  host: string;
  osId: string;
  osFamily: 'debian' | 'rhel' | 'unknown';
  pkgManager: PackageManager | null;
  /** keepalived and haproxy: their binary is found; curl: /usr/bin/curl (the path keepalived's check runs) is executable. */
  installed: Record<PackageKey, boolean>;
  /** `keepalived --version` as major.minor.patch (e.g. "2.2.7"); null when not installed or not readable. */
  keepalivedVersion: string | null;
  /** The keepalived.conf on the host has kha-deploy's serving check (chk_haproxy_serving); null when there is no file. */
  keepalivedServingCheck: boolean | null;
  /** `haproxy -vv`'s version as major.minor[.patch] (e.g. "2.6.12"); null when not installed or not readable. */
  haproxyVersion: string | null;
  /** `haproxy -vv` lists the Prometheus exporter (PROMEX); null when haproxy is not installed. */
  haproxyPromex: boolean | null;
  /**
   * The kernel reports process events to this host's keepalived (vrrp_track_process needs them): false
   * in a container (a PID or user namespace of its own: the kernel ignores the subscription) or on a
   * kernel without CONFIG_PROC_EVENTS; null when unknown.
   */
  procEvents: boolean | null;
  /** dpkg reports packages left half-installed or unconfigured (an install that was stopped). */
  pkgInterrupted: boolean;
  /** sha256 of each managed file, null when absent. Keys are absolute paths. */
  files: Record<string, string | null>;
  /** sha256 of the config each service last loaded through kha-deploy (state file), null when unknown. */
  applied: Record<ManagedUnit, string | null>;
  units: Record<ManagedUnit, UnitFacts>;
  runDirExists: boolean;
  /** Some tmpfiles.d entry already recreates /run/haproxy at boot. */
  runDirPersistent: boolean;
  /** Interface of the route to the VIP (or the interface holding it). */
  routeInterface: string | null;
  interfaces: InterfaceFacts[];
  /** Interfaces that currently carry the VIP. */
  vipOn: string[];
  /** SELinux mode (getenforce, else /sys/fs/selinux/enforce); null: no SELinux on the host. Absent in facts from an older script. */
  selinux?: 'enforcing' | 'permissive' | 'disabled' | null;
  /** firewalld.service is active (systemctl is-active); null: unknown (no systemd). */
  firewalldRunning?: boolean | null;
  /** What keepalived.conf on the host says (meaningful while keepalived runs it: applied === files[path]); absent without a file. */
  keepalivedConf?: KeepalivedConfFacts;
}

/** The VRRP instance in the keepalived.conf on disk: the change order and restarts depend on what keepalived runs now. */
export interface KeepalivedConfFacts {
  priority: number | null;
  virtualRouterId: number | null;
  interface: string | null;
  /** unicast_src_ip, or null (multicast). */
  unicastSrcIp: string | null;
  /** The first address of virtual_ipaddress (without /prefix), or null. */
  vip: string | null;
}

export type StepStatus = 'ok' | 'changed' | 'failed' | 'skipped';

/** One remote operation the apply module knows how to execute. */
export type Operation =
  | { op: 'run'; script: string; description: string }
  | {
      op: 'write-file';
      path: string;
      content: string;
      mode: string;
      /** Validator run on the host against the temp file; `{file}` is replaced by its quoted path. */
      validate?: string;
      /** The service that loads this file: its previous version comes back if that service fails. */
      unit?: ManagedUnit;
    }
  | {
      op: 'service';
      unit: ManagedUnit;
      action: 'enable-start' | 'reload' | 'restart' | 'enable';
      /** sha256 of the config the unit loads by this op; recorded in /var/lib/kha-deploy/UNIT.applied after success. */
      recordApplied?: string;
    };

export interface PlannedStep {
  /** Stable id from the playbook: packages, rundir, haproxy-config, keepalived-config, units. */
  id: string;
  title: string;
  /** Nothing to do when ops is empty: the step reports ok. */
  ops: Operation[];
  /** Deadline for each remote command of this step (from the playbook). */
  timeoutMs: number;
  /** Why the step changes something, in plain words ('' when ops is empty). */
  reason: string;
}

export interface HostPlan {
  host: string;
  steps: PlannedStep[];
  /** What the operator should know about this plan (shown once, when the master's turn comes). */
  warnings: string[];
}

export interface HostRecap {
  host: string;
  ok: number;
  changed: number;
  /** 1 when the host could not be reached (connect failed or the connection was lost), as Ansible counts it. */
  unreachable: number;
  failed: number;
  /** Remote commands this run sent to the host. */
  commands: number;
}

/** Result of one remote command. Never throws for a non-zero exit. */
export interface RemoteResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Bytes written to the command's stdin, then stdin is closed. */
  stdin?: string;
  /** What the command does, for progress lines and errors; `-v` still shows the whole command. */
  label?: string;
  /**
   * Deadline. Past it the command's remote process group is ended (TERM, then KILL) and run()
   * rejects with a DeadlineError carrying what the command had printed. Default: none.
   */
  timeoutMs?: number;
  /** Aborted (Ctrl-C): the remote process group is ended and run() rejects with InterruptedError within 2 s. */
  signal?: AbortSignal;
}

export interface HoldOptions {
  /** Write one heartbeat byte to the held command's stdin this often (default 5000 ms; 0 = never). */
  heartbeatMs?: number;
  /** Deadline for reaching the ready marker (the script before it, e.g. facts); as RunOptions.timeoutMs. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** A long-running command that holds something (the run lock) until released. */
export interface HeldCommand {
  /** stdout printed before the ready marker line. */
  output: string;
  /** Stop the heartbeat, close stdin and wait for the command to end. */
  release(): Promise<void>;
}

/**
 * One host's connection, as the engine sees it. The implementation (src/ssh/session.ts) wraps every
 * script as `sh -c <quoted>` (through `sudo -n` when becoming), reuses one SSH connection and counts
 * commands. Scripts are POSIX sh; callers quote every value with shellQuote().
 */
export interface Remote {
  readonly host: string;
  /** Remote commands sent so far (each run/hold counts one). */
  readonly commandCount: number;
  /** Never rejects for a non-zero exit; rejects with ConnectError (connection lost), DeadlineError, InterruptedError. */
  run(script: string, opts?: RunOptions): Promise<RemoteResult>;
  /**
   * Start `script`, collect stdout until a line equal to `readyMarker`, and keep the command running
   * (stdin open) until release(). Resolves with the result instead when the command exits first.
   */
  hold(script: string, readyMarker: string, opts?: HoldOptions): Promise<HeldCommand | RemoteResult>;
  close(): Promise<void>;
}

/** What every command that talks to the masters is run with: the inventory, the playbook, how to connect, where events go. */
export interface RunContext {
  spec: ClusterSpec;
  playbook: import('./playbook.js').Playbook;
  /** Hosts to act on (after --limit), in any order; commands order them by spec.order. */
  hosts: HostSpec[];
  connect: (host: HostSpec) => Promise<Remote>;
  emit: (e: RunEvent) => void;
  signal?: AbortSignal;
}

/** Events the runner emits; the UI subscribes. The core never prints. */
export type RunEvent =
  | { type: 'inventory'; spec: ClusterSpec }
  | { type: 'phase'; phase: 'connect' | 'facts' | 'packages' | 'rollout' | 'done' | 'drill'; message: string; /** rollout: the masters in the order they are changed. */ order?: string[] }
  | { type: 'host-start'; host: string; role: 'primary' | 'backup' }
  | { type: 'step-start'; host: string; step: string; title: string }
  | { type: 'step-end'; host: string; step: string; title: string; status: StepStatus; detail?: string }
  | { type: 'gate-wait'; host: string; gate: string; attempt: number; message: string }
  /** A gate passed: said once, with what it saw and how long it took. */
  | { type: 'gate-pass'; host: string; gate: string; elapsedMs: number; holder: string; serverVersion?: string; message: string }
  | { type: 'command'; host: string; command: string }
  | { type: 'warning'; host?: string; message: string };
