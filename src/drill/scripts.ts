// The remote scripts of the failover drill (pure): a probe loop through the VIP, a watcher for the
// VIP arriving on one master, and stopping / starting a unit under a dead-man timer on the host.
import { vipUrl } from '../gates/observe.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec, ManagedUnit } from '../types.js';

export const PROBE_LINE = '@@KHA-PROBE';
const RUN_DIR = '/run/kha-deploy';
/** HTTP answers that prove the API answered through the VIP (401/403: an apiserver that refuses anonymous /readyz still answered). */
const ANSWERED = '200|401|403';

export interface ProbeSettings {
  /** Pause between two probes (each probe is one curl). */
  intervalMs: number;
  /** Connect and total timeout of one probe. */
  timeoutMs: number;
}

export const DEFAULT_PROBE: ProbeSettings = { intervalMs: 50, timeoutMs: 1000 };

const seconds = (ms: number) => (ms / 1000).toFixed(3);

/** A drill run's id as it appears in file names: digits and dashes only. */
export function checkDrillId(id: string): string {
  if (!/^[0-9a-z-]{1,40}$/.test(id)) throw new Error(`bad drill id ${JSON.stringify(id)}`);
  return id;
}

function stopFile(id: string): string {
  return `${RUN_DIR}/drill-${checkDrillId(id)}.stop`;
}

function curlLine(spec: ClusterSpec, p: ProbeSettings): string {
  // -g: an IPv6 VIP's brackets are not a curl glob.
  return `curl -gsk -o /dev/null -w '%{http_code}' --connect-timeout ${seconds(p.timeoutMs)} --max-time ${seconds(p.timeoutMs)} ${shellQuote(`${vipUrl(spec)}/readyz`)} 2>/dev/null`;
}

/**
 * Probes https://VIP:vip_port/readyz every intervalMs until the stop file appears (probeStopScript)
 * or maxSeconds pass. One line per probe: `@@KHA-PROBE START_NS END_NS HTTP_CODE`, on this host's
 * clock (the gaps are computed from one host's clock only).
 */
export function probeScript(spec: ClusterSpec, id: string, p: ProbeSettings, maxSeconds: number): string {
  const stop = shellQuote(stopFile(id));
  return [
    scriptTag('drill-probe', id),
    'set -u',
    `mkdir -p ${RUN_DIR}`,
    `rm -f ${stop}`,
    `kha_end=$(( $(date +%s) + ${Math.ceil(maxSeconds)} ))`,
    `while [ ! -e ${stop} ] && [ "$(date +%s)" -lt "$kha_end" ]; do`,
    '  kha_s=$(date +%s%N)',
    `  kha_c=$(${curlLine(spec, p)}) || :`,
    `  printf '${PROBE_LINE} %s %s %s\\n' "$kha_s" "$(date +%s%N)" "\${kha_c:-000}"`,
    `  sleep ${seconds(p.intervalMs)}`,
    'done',
    `rm -f ${stop}`,
  ].join('\n');
}

/** Ends the probe loop of drill `id` after its current probe. */
export function probeStopScript(id: string): string {
  return [scriptTag('drill-probe-stop', id), `mkdir -p ${RUN_DIR}`, `touch ${shellQuote(stopFile(id))}`].join('\n');
}

/** Waits (polling every 20 ms) until the VIP is on this host (`on`) or off it; exit 1 after timeoutMs. */
export function watchVipScript(spec: ClusterSpec, want: 'on' | 'off', timeoutMs: number): string {
  const needle = ` ${spec.family === 6 ? 'inet6' : 'inet'} ${spec.vip}/`;
  return [
    scriptTag('drill-watch', want, spec.vip),
    `kha_n=${Math.max(1, Math.ceil(timeoutMs / 25))}`,
    'kha_i=0',
    'while :; do',
    `  if ip -o addr show | grep -qF -- ${shellQuote(needle)}; then kha_h=on; else kha_h=off; fi`,
    `  [ "$kha_h" = ${want} ] && exit 0`,
    '  kha_i=$((kha_i+1)); [ "$kha_i" -ge "$kha_n" ] && exit 1',
    '  sleep 0.02',
    'done',
  ].join('\n');
}

/** Polls the API through the VIP until it answers; prints the last HTTP code; exit 1 after timeoutMs. */
export function apiAnswersScript(spec: ClusterSpec, p: ProbeSettings, timeoutMs: number): string {
  return [
    scriptTag('drill-api', spec.vip),
    `kha_end=$(( $(date +%s) + ${Math.ceil(timeoutMs / 1000)} ))`,
    'while :; do',
    `  kha_c=$(${curlLine(spec, p)}) || :`,
    `  case "\${kha_c:-000}" in ${ANSWERED}) echo "$kha_c"; exit 0;; esac`,
    '  [ "$(date +%s)" -ge "$kha_end" ] && { echo "${kha_c:-000}"; exit 1; }',
    '  sleep 0.1',
    'done',
  ].join('\n');
}

/** The transient unit that starts `unit` again if the drill never comes back to do it. */
export function deadmanUnit(unit: ManagedUnit): string {
  return `kha-drill-restore-${unit}`;
}

/**
 * Stops `unit`, but first arms a systemd timer on the host that starts it again after
 * deadmanSeconds: a drill whose controller dies (SIGKILL, lost network) still leaves the host as found.
 */
export function stopUnitScript(unit: ManagedUnit, deadmanSeconds: number): string {
  const d = deadmanUnit(unit);
  return [
    scriptTag('drill-stop', unit),
    'set -eu',
    `systemctl stop ${d}.timer >/dev/null 2>&1 || :`,
    `systemctl reset-failed ${d}.service ${d}.timer >/dev/null 2>&1 || :`,
    `systemd-run --quiet --unit=${d} --on-active=${Math.ceil(deadmanSeconds)} "$(command -v systemctl)" start ${unit}.service`,
    `systemctl stop ${unit}.service`,
  ].join('\n');
}

/** Starts `unit` again, checks it stays active, and only then disarms the dead-man timer. */
export function startUnitScript(unit: ManagedUnit): string {
  const d = deadmanUnit(unit);
  return [
    scriptTag('drill-start', unit),
    'set -u',
    `systemctl start ${unit}.service || { echo "${unit} did not start" >&2; exit 3; }`,
    'sleep 0.3',
    `systemctl is-active --quiet ${unit}.service || { echo "${unit} is not active after start" >&2; exit 3; }`,
    `systemctl stop ${d}.timer >/dev/null 2>&1 || :`,
    `systemctl reset-failed ${d}.service ${d}.timer >/dev/null 2>&1 || :`,
  ].join('\n');
}

/** With nopreempt the VIP does not come back by itself: restarting keepalived on the interim holder hands it back. */
export function handBackScript(): string {
  return [scriptTag('drill-handback'), 'set -eu', 'systemctl restart keepalived.service'].join('\n');
}
