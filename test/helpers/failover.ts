// Failover measurements on the lab: switchable apiserver failure modes, a probe loop through the
// VIP run inside a lab host, and in-host watchers that time when the VIP arrives or haproxy
// changes its view of a backend.
//
// Every time here is CLOCK_MONOTONIC in milliseconds: nowMs() in this process and
// time.monotonic() in the lab hosts read the same kernel clock (containers share it), so a time
// taken in a host and one taken here can be subtracted. Watchers and probes run inside the hosts
// (python3 there), so their times do not include `docker exec` start-up.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { hostExec, lab, labHost, vipHolders } from './lab.js';

/** Monotonic milliseconds, on the clock the lab hosts' time.monotonic() reads. */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a python3 program inside a host (program as an argument, argv after it); collects its output. */
function hostPython(host: string, program: string, argv: string[], opts: { timeoutMs?: number } = {}) {
  const h = labHost(host);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn('docker', ['exec', h.container, 'python3', '-u', '-c', program, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => {
      stderr += `\n[failover helper] timed out after ${opts.timeoutMs ?? 60_000} ms`;
      child.kill('SIGKILL');
    }, opts.timeoutMs ?? 60_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Actions with a timestamp taken in the host

const ACT_PY = String.raw`
import subprocess, sys, time
t = time.monotonic()
r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
sys.stdout.write("@@AT %.3f %d\n" % (t * 1000, r.returncode))
sys.stdout.write(r.stdout.decode(errors="replace"))
`;

/**
 * Runs argv in the host (no shell) and returns the monotonic time taken in the host just before
 * it started, so the time of a failure we cause is not blurred by `docker exec` start-up.
 * Throws when the command fails.
 */
export async function hostAction(host: string, argv: string[]): Promise<number> {
  const r = await hostPython(host, ACT_PY, argv);
  const m = /^@@AT (\S+) (\d+)$/m.exec(r.stdout);
  if (!m || m[2] !== '0' || r.code !== 0) throw new Error(`on ${host}: ${argv.join(' ')} failed (exit ${m?.[2] ?? r.code}):\n${r.stdout}${r.stderr}`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// Apiserver failure modes (lab/image/kube-apiserver.py reads the mode file per connection and request)

export type ApiserverMode = 'ready' | 'unready' | 'hung' | 'stopped' | 'anonymous-denied';
export const APISERVER_MODE_FILE = '/run/kha-lab/apiserver-mode';
const MODES: readonly ApiserverMode[] = ['ready', 'unready', 'hung', 'stopped', 'anonymous-denied'];

const SET_MODE_SH = String.raw`
set -eu
mode=$1 file=$2
grep -q apiserver-mode /usr/local/lib/kha-lab/kube-apiserver.py || {
  echo "this host runs a lab image whose apiserver has no failure modes: recreate it (resetHosts() / bash lab/up.sh --fresh)" >&2; exit 3; }
install -d -m 0755 "$(dirname "$file")"
if [ "$mode" = stopped ]; then
  rm -f "$file"
  exec systemctl stop kube-apiserver.service
fi
if [ "$mode" = ready ]; then rm -f "$file"; else printf '%s\n' "$mode" >"$file.tmp" && mv -f "$file.tmp" "$file"; fi
systemctl is-active --quiet kube-apiserver.service || systemctl start kube-apiserver.service
`;

/**
 * Switches the stand-in apiserver of `host`: `ready` (healthy), `unready` (lost etcd: /readyz 500,
 * API paths 503, /version 200), `hung` (accepts TCP, never answers), `stopped` (unit stopped).
 * No restart for ready/unready/hung; any mode other than `stopped` starts a stopped unit.
 * Returns the monotonic time (ms, taken in the host) when the switch began.
 */
export async function setApiserverMode(host: string, mode: ApiserverMode): Promise<number> {
  if (!MODES.includes(mode)) throw new Error(`unknown apiserver mode ${JSON.stringify(mode)} (modes: ${MODES.join(', ')})`);
  return hostAction(host, ['bash', '-c', SET_MODE_SH, 'set-apiserver-mode', mode, APISERVER_MODE_FILE]);
}

/** The mode the host's apiserver is in now (`stopped` when its unit is not active). */
export async function getApiserverMode(host: string): Promise<ApiserverMode> {
  const r = await hostExec(host, `systemctl is-active --quiet kube-apiserver.service || { echo stopped; exit 0; }; cat ${APISERVER_MODE_FILE} 2>/dev/null || echo ready`);
  const m = r.stdout.trim();
  return (['unready', 'hung', 'stopped', 'anonymous-denied'] as string[]).includes(m) ? (m as ApiserverMode) : 'ready';
}

// ---------------------------------------------------------------------------------------------
// The probe loop

const PROBE_PY = String.raw`
import errno, socket, ssl, sys, threading, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
interval, timeout, max_s, cafile = float(sys.argv[4]) / 1000, float(sys.argv[5]) / 1000, float(sys.argv[6]), sys.argv[7]
if cafile:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the answer must come from a lab apiserver; the VIP in its SANs is another test's business
else:
    ctx = ssl._create_unverified_context()
req = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: kha-failover-probe\r\nAccept: application/json\r\nConnection: close\r\n\r\n" % (path, host, port)).encode()
out = threading.Lock()

def emit(line):
    with out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def probe(seq, sent):
    deadline = sent + timeout
    def left():
        r = deadline - time.monotonic()
        if r <= 0:
            raise TimeoutError()
        return r
    status, backend, why, s = "-", "-", "-", None
    try:
        s = socket.create_connection((host, port), timeout=left())
        s.settimeout(left())
        s = ctx.wrap_socket(s, server_hostname=host)
        s.settimeout(left())
        s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            s.settimeout(left())
            d = s.recv(65536)
            if not d:
                raise EOFError()
            buf += d
        lines = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = lines[0].split(" ")[1]
        for h in lines[1:]:
            k, _, v = h.partition(":")
            if k.strip().lower() == "x-kha-lab-host":
                backend = v.strip() or "-"
        ok = status == "200"
        if not ok:
            why = "http-" + status
    except TimeoutError:
        ok, why = False, "timeout"
    except EOFError:
        ok, why = False, "eof"
    except ssl.SSLError as e:
        ok, why = False, "tls-" + (getattr(e, "reason", None) or type(e).__name__)
    except OSError as e:
        ok, why = False, (errno.errorcode.get(e.errno, type(e).__name__) if e.errno else type(e).__name__)
    except Exception as e:
        ok, why = False, type(e).__name__
    finally:
        if s is not None:
            try:
                s.close()
            except Exception:
                pass
    emit("P %d %.3f %.3f %s %s %s %s" % (seq, sent * 1000, time.monotonic() * 1000, "ok" if ok else "fail", status, backend, why))

stop = threading.Event()
def watch_stdin():
    try:
        sys.stdin.buffer.read()
    finally:
        stop.set()
threading.Thread(target=watch_stdin, daemon=True).start()

t0 = time.monotonic()
emit("S %.3f" % (t0 * 1000))
seq, nxt, threads = 0, t0, []
while not stop.is_set() and time.monotonic() < t0 + max_s:
    now = time.monotonic()
    th = threading.Thread(target=probe, args=(seq, now), daemon=True)
    th.start()
    threads.append(th)
    seq += 1
    if seq % 64 == 0:
        threads = [t for t in threads if t.is_alive()]
    nxt = max(nxt + interval, now)  # a late tick is not made up for with a burst
    stop.wait(max(0.0, nxt - time.monotonic()))
emit("X %.3f" % (time.monotonic() * 1000))
for th in threads:
    th.join(timeout + 1)
emit("E %.3f" % (time.monotonic() * 1000))
`;

export interface ProbeSample {
  seq: number;
  /** Monotonic ms when the request was started (connect). */
  sentMs: number;
  /** Monotonic ms when it answered or failed. */
  doneMs: number;
  ok: boolean;
  /** HTTP status, or '-' when none came back. */
  status: string;
  /** X-Kha-Lab-Host of the apiserver that answered, or '-'. */
  backend: string;
  /** Why it failed: timeout, ECONNREFUSED, ECONNRESET, EHOSTUNREACH, eof, tls-…, http-503 …; '-' when ok. */
  reason: string;
}

export interface ProbeStats {
  total: number;
  ok: number;
  failed: number;
  /** Longest time (ms) without a successful answer, measured between answers (window start and end count as answers). */
  longestGapMs: number;
  /** [from, to] of that gap, monotonic ms. */
  longestGap: [number, number];
  /** Monotonic ms when the first / last failing request was sent (null: none failed). */
  firstFailureMs: number | null;
  lastFailureMs: number | null;
  /** Failures by reason. */
  reasons: Record<string, number>;
  /** Successful answers by backend. */
  backends: Record<string, number>;
  /** Slowest successful answer (ms). */
  maxOkLatencyMs: number;
}

export interface ProbeReport extends ProbeStats {
  from: string;
  url: string;
  intervalMs: number;
  timeoutMs: number;
  /** Monotonic ms: first request / last request sent. */
  startedMs: number;
  stoppedMs: number;
  samples: ProbeSample[];
  /** Anything the probe printed on stderr. */
  stderr: string;
}

export interface ProbeOptions {
  /** Request path (default /version; /api answers 503 on an unready apiserver). */
  path?: string;
  /** Time between requests (default 50 ms); each request has its own connection. */
  intervalMs?: number;
  /** Per-request deadline: connect + TLS + answer (default 1000 ms). */
  timeoutMs?: number;
  /** The probe ends by itself after this long, should stop() never come (default 600 s). */
  maxSeconds?: number;
  /** Verify the answer against the lab CA in the host (default true; the host name is not checked). */
  verifyCa?: boolean;
}

export interface Probe {
  readonly from: string;
  /** Samples so far (in completion order). */
  samples(): ProbeSample[];
  /** Resolves once `n` consecutive requests sent at or after `sinceMs` succeeded; rejects after timeoutMs. */
  waitForOk(n: number, opts?: { sinceMs?: number; timeoutMs?: number }): Promise<number>;
  /** Stops sending, waits for the requests in flight, and reports. */
  stop(): Promise<ProbeReport>;
}

/** Statistics over the requests sent in [fromMs, toMs] (both optional). */
export function probeStats(samples: readonly ProbeSample[], fromMs = -Infinity, toMs = Infinity): ProbeStats {
  const inWin = samples.filter((s) => s.sentMs >= fromMs && s.sentMs <= toMs).sort((a, b) => a.sentMs - b.sentMs);
  const fails = inWin.filter((s) => !s.ok);
  const oks = inWin.filter((s) => s.ok);
  const start = Number.isFinite(fromMs) ? fromMs : (inWin[0]?.sentMs ?? 0);
  const end = Number.isFinite(toMs) ? toMs : Math.max(start, ...inWin.map((s) => s.doneMs));
  const points = [start, ...oks.map((s) => s.doneMs).filter((t) => t > start && t < end).sort((a, b) => a - b), end];
  let gap = 0;
  let gapAt: [number, number] = [start, start];
  for (let i = 1; i < points.length; i++) {
    if (points[i]! - points[i - 1]! > gap) {
      gap = points[i]! - points[i - 1]!;
      gapAt = [points[i - 1]!, points[i]!];
    }
  }
  const count = (xs: ProbeSample[], key: (s: ProbeSample) => string) =>
    xs.reduce<Record<string, number>>((m, s) => ((m[key(s)] = (m[key(s)] ?? 0) + 1), m), {});
  return {
    total: inWin.length,
    ok: oks.length,
    failed: fails.length,
    longestGapMs: Math.round(gap),
    longestGap: gapAt,
    firstFailureMs: fails[0]?.sentMs ?? null,
    lastFailureMs: fails.at(-1)?.sentMs ?? null,
    reasons: count(fails, (s) => s.reason),
    backends: count(oks, (s) => s.backend),
    maxOkLatencyMs: Math.round(Math.max(0, ...oks.map((s) => s.doneMs - s.sentMs))),
  };
}

/**
 * When the API answered through the VIP again after an event at `sinceMs`: the answer time of the
 * first successful request sent after the last failed request sent in [sinceMs, untilMs) (null:
 * none failed there, i.e. the API never stopped answering; Infinity: no success after it).
 */
export function answeringAgainMs(samples: readonly ProbeSample[], sinceMs: number, untilMs = Infinity): number | null {
  const sorted = [...samples].sort((a, b) => a.sentMs - b.sentMs);
  const lastFail = sorted.filter((s) => !s.ok && s.sentMs >= sinceMs && s.sentMs < untilMs).at(-1);
  if (!lastFail) return null;
  const back = sorted.find((s) => s.ok && s.sentMs > lastFail.sentMs);
  return back ? back.doneMs : Infinity;
}

/**
 * Starts a probe loop inside `fromHost`: every intervalMs a new TLS connection to
 * https://VIP:8443{path}, each with a timeoutMs deadline, one line per request. Resolves once the
 * loop runs. Run it from a host that does not hold the VIP (a holder talks to itself).
 */
export async function startProbe(fromHost: string, opts: ProbeOptions = {}): Promise<Probe> {
  const h = labHost(fromHost);
  const path = opts.path ?? '/version';
  const intervalMs = opts.intervalMs ?? 50;
  const timeoutMs = opts.timeoutMs ?? 1000;
  const port = 8443;
  const argv = [
    lab.vip,
    String(port),
    path,
    String(intervalMs),
    String(timeoutMs),
    String(opts.maxSeconds ?? 600),
    opts.verifyCa === false ? '' : '/etc/kubernetes/pki/ca.crt',
  ];
  const child = spawn('docker', ['exec', '-i', h.container, 'python3', '-u', '-c', PROBE_PY, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  const samples: ProbeSample[] = [];
  const listeners = new Set<() => void>();
  let startedMs = NaN;
  let stoppedMs = NaN;
  let stderr = '';
  let closed = false;
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  createInterface({ input: child.stdout }).on('line', (line) => {
    const f = line.split(' ');
    if (f[0] === 'S') startedMs = Number(f[1]);
    else if (f[0] === 'X') stoppedMs = Number(f[1]);
    else if (f[0] === 'P' && f.length >= 8) {
      samples.push({ seq: Number(f[1]), sentMs: Number(f[2]), doneMs: Number(f[3]), ok: f[4] === 'ok', status: f[5]!, backend: f[6]!, reason: f[7]! });
    }
    listeners.forEach((l) => l());
  });
  const done = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      closed = true;
      listeners.forEach((l) => l());
      resolve(code);
    }),
  );
  child.on('error', (e) => {
    stderr += String(e);
  });

  const until = (cond: () => boolean, ms: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (cond()) {
          cleanup();
          resolve();
        } else if (closed) {
          cleanup();
          reject(new Error(`the probe from ${fromHost} ended before ${what}: ${stderr.trim()}`));
        }
      };
      const t = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${ms} ms waiting for ${what} (probe from ${fromHost}; last: ${JSON.stringify(samples.slice(-3))})`));
      }, ms);
      const cleanup = () => {
        clearTimeout(t);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });

  try {
    await until(() => !Number.isNaN(startedMs), 15_000, 'its first request');
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }

  const probe: Probe = {
    from: fromHost,
    samples: () => [...samples],
    async waitForOk(n, o = {}) {
      const since = o.sinceMs ?? -Infinity;
      let at = NaN;
      await until(
        () => {
          const run = samples.filter((s) => s.sentMs >= since).sort((a, b) => a.sentMs - b.sentMs);
          let streak = 0;
          for (const s of run) {
            streak = s.ok ? streak + 1 : 0;
            if (streak >= n) {
              at = s.doneMs;
              return true;
            }
          }
          return false;
        },
        o.timeoutMs ?? 30_000,
        `${n} successful requests in a row through the VIP`,
      );
      return at;
    },
    async stop() {
      child.stdin.end();
      const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 15_000);
      await done;
      clearTimeout(killer);
      if (Number.isNaN(stoppedMs)) stoppedMs = Math.max(startedMs, ...samples.map((s) => s.sentMs));
      const sorted = [...samples].sort((a, b) => a.sentMs - b.sentMs);
      return {
        from: fromHost,
        url: `https://${lab.vip}:${port}${path}`,
        intervalMs,
        timeoutMs,
        startedMs,
        stoppedMs,
        ...probeStats(sorted, startedMs, stoppedMs),
        samples: sorted,
        stderr,
      };
    },
  };
  return probe;
}

/** The probe's failures second by second (relative to t0), for assertion messages and logs. */
export function describeProbe(r: ProbeReport | ProbeSample[], t0 = 0): string {
  const samples = Array.isArray(r) ? r : r.samples;
  const buckets = new Map<number, ProbeSample[]>();
  for (const s of samples) {
    const k = Math.floor((s.sentMs - t0) / 1000);
    buckets.set(k, [...(buckets.get(k) ?? []), s]);
  }
  const out: string[] = [];
  for (const [k, xs] of [...buckets].sort((a, b) => a[0] - b[0])) {
    const fails = xs.filter((s) => !s.ok);
    if (!fails.length) continue;
    const why = Object.entries(fails.reduce<Record<string, number>>((m, s) => ((m[s.reason] = (m[s.reason] ?? 0) + 1), m), {}))
      .map(([w, n]) => `${w} x${n}`)
      .join(', ');
    out.push(`  [${k >= 0 ? '+' : ''}${k} s, +${k + 1} s): ${fails.length}/${xs.length} failed (${why})`);
  }
  if (!Array.isArray(r)) out.unshift(`probe ${r.url} from ${r.from}: ${r.total} requests, ${r.failed} failed, longest gap ${r.longestGapMs} ms${out.length ? '; failures by second after t0:' : ''}`);
  return out.slice(0, 80).join('\n');
}

// ---------------------------------------------------------------------------------------------
// The VIP

const WATCH_VIP_PY = String.raw`
import subprocess, sys, time
vip, want, timeout = sys.argv[1], sys.argv[2] == "on", float(sys.argv[3]) / 1000
end = time.monotonic() + timeout
print("S %.3f" % (time.monotonic() * 1000), flush=True)
while True:
    out = subprocess.run(["ip", "-o", "addr", "show"], stdout=subprocess.PIPE).stdout.decode()
    t = time.monotonic()
    if ((" inet %s/" % vip) in out) == want:
        print("F %.3f" % (t * 1000), flush=True)
        sys.exit(0)
    if t > end:
        print("T %.3f" % (t * 1000), flush=True)
        sys.exit(1)
    time.sleep(0.02)
`;

export interface VipWatch {
  /** Resolves once the watcher runs in the host (start the failure after this). */
  ready: Promise<void>;
  /** Monotonic ms when `ip -o addr` in the host first showed the wanted state; rejects on timeout. */
  at: Promise<number>;
}

/** Watches `ip -o addr` in the host every 20 ms until the VIP is there (`on`) or gone (`off`). */
export function watchVip(host: string, want: 'on' | 'off', timeoutMs: number): VipWatch {
  const h = labHost(host);
  const child = spawn('docker', ['exec', h.container, 'python3', '-u', '-c', WATCH_VIP_PY, lab.vip, want, String(timeoutMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let onReady!: () => void;
  let onFail!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => {
    onReady = res;
    onFail = rej;
  });
  const at = new Promise<number>((resolve, reject) => {
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 20_000);
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [k, v] = line.split(' ');
      if (k === 'S') onReady();
      else if (k === 'F') resolve(Number(v));
      else if (k === 'T') {
        vipHolders().then(
          (holders) => reject(new Error(`the VIP was not ${want === 'on' ? 'on' : 'off'} ${host} within ${timeoutMs} ms (holders now: ${holders.join(', ') || 'nobody'})`)),
          reject,
        );
      }
    });
    child.on('close', (code) => {
      clearTimeout(killer);
      const e = new Error(`VIP watcher on ${host} ended (exit ${code}): ${stderr.trim()}`);
      onFail(e);
      reject(e); // no effect once settled
    });
  });
  at.catch(() => {}); // a caller that only awaits `ready` must not see an unhandled rejection
  return { ready, at };
}

/**
 * Waits until `ip -o addr` on `host` shows the VIP; resolves with the ms from `since` (monotonic,
 * default: now) to that moment. Throws after timeoutMs, naming who holds the VIP then.
 */
export async function waitForVipOn(host: string, timeoutMs: number, opts: { since?: number } = {}): Promise<number> {
  const since = opts.since ?? nowMs();
  const at = await watchVip(host, 'on', timeoutMs).at;
  return Math.max(0, at - since);
}

const TRACE_VIP_PY = String.raw`
import os, select, subprocess, sys, time
vip, max_s = sys.argv[1], float(sys.argv[2])
needle = " inet %s/" % vip
mon = subprocess.Popen(["ip", "-o", "monitor", "address"], stdout=subprocess.PIPE)
time.sleep(0.1)  # subscribed before the current state is read: no change falls in between
present = needle in subprocess.run(["ip", "-o", "addr", "show"], stdout=subprocess.PIPE).stdout.decode()
print("S %.3f %d" % (time.monotonic() * 1000, present), flush=True)
end, buf = time.monotonic() + max_s, b""
while time.monotonic() < end:
    r, _, _ = select.select([mon.stdout, sys.stdin], [], [], 1.0)
    if sys.stdin in r and not os.read(sys.stdin.fileno(), 4096):
        break
    if mon.stdout in r:
        d = os.read(mon.stdout.fileno(), 65536)
        t = time.monotonic()
        if not d:
            break
        buf += d
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            line = line.decode(errors="replace")
            if needle in line:
                now = not line.startswith("Deleted")
                if now != present:
                    present = now
                    print("C %.3f %d" % (t * 1000, present), flush=True)
mon.kill()
print("E %.3f" % (time.monotonic() * 1000), flush=True)
`;

export interface VipEvent {
  /** Monotonic ms (taken in the host when the kernel reported the change). */
  atMs: number;
  host: string;
  /** The VIP is on `host` from atMs on. */
  present: boolean;
}

export interface VipTrace {
  /** Every change so far on every traced host (the first event per host is its state when tracing began), in time order. */
  events(): VipEvent[];
  /** Resolves with the first event matching `pred` (past or future); rejects after timeoutMs. */
  waitFor(pred: (e: VipEvent) => boolean, timeoutMs: number, what: string): Promise<VipEvent>;
  /** Hosts holding the VIP now, as traced. */
  holders(): string[];
  stop(): Promise<VipEvent[]>;
}

/**
 * Traces where the VIP is on every lab host (or `hosts`), event by event, from the kernel's own
 * address notifications (`ip -o monitor address` inside each host, so no change between two
 * polls is missed). Resolves once every tracer runs.
 */
export async function traceVip(hosts: readonly string[] = lab.hosts.map((h) => h.name), opts: { maxSeconds?: number } = {}): Promise<VipTrace> {
  const events: VipEvent[] = [];
  const listeners = new Set<() => void>();
  const children = hosts.map((host) => {
    const child = spawn('docker', ['exec', '-i', labHost(host).container, 'python3', '-u', '-c', TRACE_VIP_PY, lab.vip, String(opts.maxSeconds ?? 600)], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.on('error', () => {});
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    let started!: () => void;
    let failed!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => {
      started = res;
      failed = rej;
    });
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [k, t, p] = line.split(' ');
      if (k === 'S' || k === 'C') {
        events.push({ atMs: Number(t), host, present: p === '1' });
        events.sort((a, b) => a.atMs - b.atMs);
        if (k === 'S') started();
        listeners.forEach((l) => l());
      }
    });
    const closed = new Promise<void>((res) =>
      child.on('close', (code) => {
        failed(new Error(`VIP tracer on ${host} ended before it started (exit ${code}): ${stderr.trim()}`));
        res();
      }),
    );
    return { child, ready, closed };
  });
  const stopAll = async () => {
    for (const c of children) c.child.stdin.end();
    const killer = setTimeout(() => children.forEach((c) => c.child.kill('SIGKILL')), 10_000);
    await Promise.all(children.map((c) => c.closed));
    clearTimeout(killer);
    return [...events];
  };
  try {
    await Promise.race([Promise.all(children.map((c) => c.ready)), sleep(20_000).then(() => Promise.reject(new Error('VIP tracers did not start within 20 s')))]);
  } catch (e) {
    await stopAll();
    throw e;
  }
  const trace: VipTrace = {
    events: () => [...events],
    holders() {
      const now = new Map<string, boolean>();
      for (const e of events) now.set(e.host, e.present);
      return hosts.filter((h) => now.get(h));
    },
    waitFor(pred, timeoutMs, what) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = events.find(pred);
          if (hit) {
            cleanup();
            resolve(hit);
          }
        };
        const t = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; VIP holders now: ${trace.holders().join(', ') || 'nobody'}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(t);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
    stop: stopAll,
  };
  return trace;
}

// ---------------------------------------------------------------------------------------------
// haproxy's view of its backends

const STATS_PY = String.raw`
import socket, sys, time, urllib.request
def read_stats():
    # The monitor frontend (127.0.0.1:8404, stats CSV) when the config has one; the admin socket otherwise.
    try:
        with urllib.request.urlopen("http://127.0.0.1:8404/stats;csv", timeout=1) as r:
            body = r.read().decode()
            if body.startswith("# pxname"):
                return "monitor", body
    except Exception:
        pass
    for path in ("/run/haproxy/admin.sock", "/var/run/haproxy/admin.sock"):
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(path)
            s.sendall(b"show stat\n")
            data = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                data += d
            s.close()
            return "socket", data.decode()
        except OSError:
            continue
    return None, ""
def rows():
    src, body = read_stats()
    lines = [l for l in body.splitlines() if l.strip()]
    if not lines:
        return src, []
    head = lines[0].lstrip("# ").split(",")
    return src, [dict(zip(head, l.split(","))) for l in lines[1:]]
cmd = sys.argv[1]
if cmd == "show":
    src, rs = rows()
    print("SRC %s" % src)
    for r in rs:
        if r.get("svname") in ("FRONTEND", "BACKEND"):
            continue
        print("ROW %s %s %s %s %s" % (r.get("pxname"), r.get("svname"), (r.get("status") or "-").replace(" ", "_"), r.get("check_status") or "-", r.get("lastchg") or "-"))
else:
    server, want, timeout = sys.argv[2], sys.argv[3], float(sys.argv[4]) / 1000
    end = time.monotonic() + timeout
    print("S %.3f" % (time.monotonic() * 1000), flush=True)
    last = ""
    while True:
        t = time.monotonic()
        src, rs = rows()
        mine = [r for r in rs if r.get("svname") == server]
        states = sorted(set((r.get("status") or "").split(" ")[0] for r in mine))
        last = "%s via %s: %s" % (server, src, ",".join("%s/%s=%s(%s)" % (r.get("pxname"), server, r.get("status"), r.get("check_status")) for r in mine) or "not listed")
        if mine and states == [want]:
            print("F %.3f %s" % (t * 1000, last), flush=True)
            sys.exit(0)
        if t > end:
            print("T %.3f %s" % (t * 1000, last), flush=True)
            sys.exit(1)
        time.sleep(0.1)
`;

export interface HaproxyServer {
  proxy: string;
  server: string;
  /** UP, DOWN, NOLB, MAINT, with a transition suffix such as "UP 1/3" (going down) or "DOWN 1/2" (going up). */
  status: string;
  /** Last check result: L4OK, L4CON, L4TOUT, L6OK, L7OK, L7STS, L7TOUT, … */
  checkStatus: string;
  /** Seconds since the last status change. */
  lastChange: number;
}

/** haproxy's servers as `host`'s haproxy sees them: from the monitor's /stats;csv, else the admin socket's `show stat`. */
export async function haproxyServers(host: string): Promise<{ source: string; servers: HaproxyServer[] }> {
  const r = await hostPython(host, STATS_PY, ['show']);
  if (r.code !== 0) throw new Error(`reading haproxy stats on ${host} failed: ${r.stdout}${r.stderr}`);
  const servers: HaproxyServer[] = [];
  let source = 'none';
  for (const line of r.stdout.split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'SRC') source = f[1]!;
    if (f[0] === 'ROW' && f.length >= 6) {
      servers.push({ proxy: f[1]!, server: f[2]!, status: f[3]!.replace(/_/g, ' '), checkStatus: f[4]!, lastChange: Number(f[5]) });
    }
  }
  return { source, servers };
}

/**
 * Waits until `viewHost`'s haproxy shows `server` (e.g. master1) as `want` (UP or DOWN; a
 * transition such as "UP 1/3" counts as UP) in every proxy that lists it; polls every 100 ms
 * inside the host. Resolves with the monotonic ms when it saw it; throws after timeoutMs with what
 * it saw last.
 */
export async function waitForServerStatus(viewHost: string, server: string, want: 'UP' | 'DOWN', timeoutMs: number): Promise<number> {
  const r = await hostPython(viewHost, STATS_PY, ['wait', server, want, String(timeoutMs)], { timeoutMs: timeoutMs + 20_000 });
  const m = /^F (\S+)/m.exec(r.stdout);
  if (m) return Number(m[1]);
  const last = /^T \S+ (.*)$/m.exec(r.stdout)?.[1] ?? `${r.stdout}${r.stderr}`;
  throw new Error(`haproxy on ${viewHost} did not show ${server} ${want} within ${timeoutMs} ms; last seen: ${last}`);
}

export interface HaproxyCheckParams {
  /** The server line's options, e.g. "check check-ssl verify none inter 2s fall 3 rise 2". */
  serverLine: string;
  interMs: number;
  fall: number;
  rise: number;
  /** `timeout check` (ms), or null when the config has none (haproxy then bounds a check by inter). */
  timeoutCheckMs: number | null;
  /** The check is an HTTP request (option httpchk), not a bare TCP connect. */
  httpCheck: boolean;
}

function durationMs(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?$/.exec(v);
  if (!m) throw new Error(`not an haproxy duration: ${v}`);
  const mult: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
  return Number(m[1]) * mult[m[2] ?? 'ms']!;
}

/** The health-check parameters of the first backend server in `host`'s /etc/haproxy/haproxy.cfg. */
export async function haproxyCheckParams(host: string): Promise<HaproxyCheckParams> {
  const cfg = (await hostExec(host, 'cat /etc/haproxy/haproxy.cfg')).stdout;
  const line = /^\s*(?:server|default-server)\s.*\bcheck\b.*$/m.exec(cfg)?.[0]?.trim();
  if (!line) throw new Error(`no server line with a health check in haproxy.cfg on ${host}:\n${cfg}`);
  // default-server options count too (a server line may inherit inter/fall/rise)
  const opts = [...cfg.matchAll(/^\s*default-server\s+(.*)$/gm)].map((m) => m[1]).join(' ') + ' ' + line;
  const opt = (name: string) => [...opts.matchAll(new RegExp(`\\b${name}\\s+(\\S+)`, 'g'))].at(-1)?.[1];
  const tc = [...cfg.matchAll(/^\s*timeout\s+check\s+(\S+)/gm)].at(-1)?.[1];
  return {
    serverLine: line,
    interMs: durationMs(opt('inter') ?? '2000'),
    fall: Number(opt('fall') ?? 3),
    rise: Number(opt('rise') ?? 2),
    timeoutCheckMs: tc ? durationMs(tc) : null,
    httpCheck: /^\s*option\s+httpchk\b/m.test(cfg),
  };
}

// ---------------------------------------------------------------------------------------------
// Back to healthy

/**
 * Undoes every failure these helpers can cause: every apiserver ready, keepalived and haproxy
 * started where stopped; then waits (bounded) until the VIP is on `primary` only and every
 * haproxy shows every apiserver UP. Throws with what it saw when that does not happen.
 */
export async function restoreHealthy(opts: { primary?: string; timeoutMs?: number } = {}): Promise<void> {
  const primary = opts.primary ?? lab.hosts[0]!.name;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const names = lab.hosts.map((h) => h.name);
  const errors: string[] = [];
  for (const h of names) {
    try {
      await setApiserverMode(h, 'ready');
    } catch (e) {
      errors.push(`${h}: ${(e as Error).message}`);
    }
    const r = await hostExec(h, 'for u in haproxy keepalived; do systemctl is-active --quiet $u || systemctl start $u; done; systemctl is-active haproxy keepalived');
    if (r.code !== 0) errors.push(`${h}: units not active: ${r.stdout}${r.stderr}`);
  }
  if (errors.length) throw new Error(`could not restore the lab: ${errors.join('; ')}`);
  const deadline = Date.now() + timeoutMs;
  let holders: string[] = [];
  while (Date.now() < deadline) {
    holders = await vipHolders();
    if (holders.length === 1 && holders[0] === primary) break;
    await sleep(250);
  }
  if (holders.join() !== primary) throw new Error(`after restoring, the VIP is on ${holders.join(', ') || 'nobody'}, not ${primary}`);
  for (const h of names) {
    for (const s of names) await waitForServerStatus(h, s, 'UP', Math.max(1000, deadline - Date.now()));
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios: cause a failure on the VIP holder, measure, repair, measure the way back

export type Scenario = 'apiserver-unready' | 'apiserver-hung' | 'apiserver-stopped' | 'haproxy-killed' | 'haproxy-stopped' | 'keepalived-stopped';
export const SCENARIOS: readonly Scenario[] = ['apiserver-unready', 'apiserver-hung', 'apiserver-stopped', 'haproxy-killed', 'haproxy-stopped', 'keepalived-stopped'];

export const SCENARIO_TEXT: Record<Scenario, string> = {
  'apiserver-unready': "the holder's apiserver lost etcd (/readyz 500, API 503, /version 200)",
  'apiserver-hung': "the holder's apiserver hangs (accepts TCP, never answers)",
  'apiserver-stopped': "the holder's apiserver is stopped (connection refused)",
  'haproxy-killed': "haproxy on the holder SIGKILLed (every process of the unit; systemd's Restart= applies)",
  'haproxy-stopped': 'haproxy stopped on the holder',
  'keepalived-stopped': 'keepalived stopped on the holder',
};

export interface PhaseFigures extends ProbeStats {
  /** From the phase's start to the first answer after the phase's last failure (null: nothing failed). */
  answeringAgainMs: number | null;
}

export interface FailoverMeasurement {
  scenario: Scenario;
  holder: string;
  probeFrom: string;
  url: string;
  checks: HaproxyCheckParams;
  /** Monotonic ms: the failure was caused (t0); the repair began (t1: mode back to ready, unit started, or systemd restarted it). */
  t0Ms: number;
  t1Ms: number;
  /** t0 → t1. */
  repairAfterMs: number;
  /** How the unit came back (haproxy-killed): 'systemd' (Restart=) or 'started' (by us). */
  repairedBy: 'mode' | 'systemd' | 'started';
  /** t0 → the holder's haproxy shows the holder's apiserver DOWN (null: not within the bound, or not an apiserver scenario). */
  markedDownMs: number | null;
  /** t1 → UP again. */
  markedUpMs: number | null;
  /** t0 → the VIP gone from the holder / on another host (null: it did not move). */
  vipLeftMs: number | null;
  vipMovedTo: string | null;
  vipMovedMs: number | null;
  /** After it moved: t1 → the VIP back on the holder (null: it did not come back within the bound, or never moved). */
  vipBackMs: number | null;
  /** Requests sent in [t0, t1) and in [t1, end]. */
  failover: PhaseFigures;
  failback: PhaseFigures;
  /** Failed requests sent after haproxy marked the apiserver DOWN and before the repair (apiserver scenarios). */
  failedAfterDown: number | null;
  /** Failed requests before t0 (should be 0: the cluster was healthy). */
  failedBefore: number;
  /** Every VIP change on every host from the start of the measurement, times relative to t0. */
  vipTimeline: string[];
  report: ProbeReport;
}

export interface MeasureOptions {
  /** The VIP holder to break (default master1, the primary). */
  holder?: string;
  /** Where the probe loop runs (default the last lab host, master3: neither holder nor next in line). */
  probeFrom?: string;
  /** Keep the failure this long after it took effect (haproxy marked DOWN, or the VIP moved) (default 3000 ms). */
  observeMs?: number;
  /** Bounds (ms) for each wait. */
  downTimeoutMs?: number;
  moveTimeoutMs?: number;
  backTimeoutMs?: number;
}

function phase(samples: readonly ProbeSample[], from: number, to: number): PhaseFigures {
  const back = answeringAgainMs(samples, from, to);
  return { ...probeStats(samples, from, to), answeringAgainMs: back === null ? null : Number.isFinite(back) ? Math.round(back - from) : Infinity };
}

/** Waits until systemd shows `unit` active again, (re)entered after t0; resolves with that monotonic ms, or null after timeoutMs. */
async function unitBackAfter(host: string, unit: string, t0: number, timeoutMs: number): Promise<number | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await hostExec(host, `systemctl show -p ActiveState -p ActiveEnterTimestampMonotonic ${unit}`);
    const state = /ActiveState=(\S+)/.exec(r.stdout)?.[1];
    const enter = Number(/ActiveEnterTimestampMonotonic=(\d+)/.exec(r.stdout)?.[1] ?? 0) / 1000;
    if (state === 'active' && enter > t0) return enter;
    await sleep(100);
  }
  return null;
}

const rel = (t: number | null | undefined, base: number) => (t === null || t === undefined ? null : Math.round(t - base));

/**
 * Causes `scenario` on the VIP holder while a probe loop runs through the VIP from another host,
 * repairs it, and measures both ways: when haproxy marked the apiserver DOWN/UP, when the VIP
 * left/moved/came back, how many requests failed and the longest time without an answer.
 * Expects a converged, healthy lab (VIP on the holder); leaves the failure repaired, but does not
 * wait for full health afterwards (restoreHealthy() does).
 */
export async function measureFailover(scenario: Scenario, opts: MeasureOptions = {}): Promise<FailoverMeasurement> {
  const holder = opts.holder ?? lab.hosts[0]!.name;
  const probeFrom = opts.probeFrom ?? lab.hosts.at(-1)!.name;
  const observeMs = opts.observeMs ?? 3000;
  const downTimeoutMs = opts.downTimeoutMs ?? 30_000;
  const moveTimeoutMs = opts.moveTimeoutMs ?? 10_000;
  const backTimeoutMs = opts.backTimeoutMs ?? 30_000;
  const checks = await haproxyCheckParams(holder);
  const path = scenario === 'apiserver-unready' ? '/api' : '/version';
  const trace = await traceVip();
  let probe: Probe | undefined;
  try {
    probe = await startProbe(probeFrom, { path });
    await probe.waitForOk(10, { timeoutMs: 15_000 });
    const before = trace.holders();
    if (before.join() !== holder) throw new Error(`the VIP is on ${before.join(', ') || 'nobody'}, not ${holder}: the lab is not in its healthy state`);

    let t0: number;
    let t1: number;
    let repairedBy: FailoverMeasurement['repairedBy'] = 'mode';
    let downAt: number | null = null;
    let upAt: number | null = null;
    let moved: VipEvent | null = null;
    const movedWait = () =>
      trace.waitFor((e) => e.atMs >= t0 && e.host !== holder && e.present, moveTimeoutMs, `the VIP on a host other than ${holder}`).catch(() => null);

    if (scenario.startsWith('apiserver-')) {
      const mode = scenario.slice('apiserver-'.length) as ApiserverMode;
      t0 = await setApiserverMode(holder, mode);
      downAt = await waitForServerStatus(holder, holder, 'DOWN', downTimeoutMs).catch(() => null);
      await sleep(observeMs);
      t1 = await setApiserverMode(holder, 'ready');
      upAt = await waitForServerStatus(holder, holder, 'UP', backTimeoutMs).catch(() => null);
    } else if (scenario === 'haproxy-killed') {
      t0 = await hostAction(holder, ['systemctl', 'kill', '--kill-whom=all', '--signal=SIGKILL', 'haproxy.service']);
      const [m, restarted] = await Promise.all([movedWait(), unitBackAfter(holder, 'haproxy.service', t0, 10_000)]);
      moved = m;
      if (restarted !== null) {
        t1 = restarted;
        repairedBy = 'systemd';
      } else {
        t1 = await hostAction(holder, ['systemctl', 'start', 'haproxy.service']);
        repairedBy = 'started';
      }
    } else {
      const unit = scenario === 'haproxy-stopped' ? 'haproxy.service' : 'keepalived.service';
      t0 = await hostAction(holder, ['systemctl', 'stop', unit]);
      moved = await movedWait();
      await sleep(observeMs);
      t1 = await hostAction(holder, ['systemctl', 'start', unit]);
      repairedBy = 'started';
    }
    if (!moved) moved = trace.events().find((e) => e.atMs >= t0 && e.host !== holder && e.present) ?? null;
    let back: VipEvent | null = null;
    if (moved) {
      const movedAt = moved.atMs;
      back = await trace
        .waitFor((e) => e.atMs > movedAt && e.host === holder && e.present, backTimeoutMs, `the VIP back on ${holder}`)
        .catch(() => null);
    }
    // Settle: the API answers through the VIP again, steadily.
    await probe.waitForOk(20, { sinceMs: Math.max(t1, back?.atMs ?? 0, upAt ?? 0), timeoutMs: 30_000 }).catch(() => undefined);
    await sleep(500);
    const report = await probe.stop();
    probe = undefined;
    const events = await trace.stop();
    const s = report.samples;
    const left = events.find((e) => e.atMs >= t0 && e.host === holder && !e.present);
    const end = report.stoppedMs;
    return {
      scenario,
      holder,
      probeFrom,
      url: report.url,
      checks,
      t0Ms: t0,
      t1Ms: t1,
      repairAfterMs: Math.round(t1 - t0),
      repairedBy,
      markedDownMs: rel(downAt, t0),
      markedUpMs: rel(upAt, t1),
      vipLeftMs: rel(left?.atMs, t0),
      vipMovedTo: moved?.host ?? null,
      vipMovedMs: rel(moved?.atMs, t0),
      vipBackMs: rel(back?.atMs, t1),
      failover: phase(s, t0, t1),
      failback: phase(s, t1, end),
      failedAfterDown: downAt === null ? null : s.filter((x) => !x.ok && x.sentMs >= downAt! && x.sentMs < t1).length,
      failedBefore: s.filter((x) => !x.ok && x.sentMs < t0).length,
      vipTimeline: events.map((e) => `${e.atMs - t0 >= 0 ? '+' : ''}${Math.round(e.atMs - t0)} ms ${e.host} ${e.present ? 'holds the VIP' : 'has no VIP'}`),
      report,
    };
  } finally {
    if (probe) await probe.stop().catch(() => undefined);
    await trace.stop().catch(() => undefined);
  }
}

/** A measurement in a few lines, for assertion messages and logs. */
export function describeMeasurement(m: FailoverMeasurement): string {
  const f = (x: number | null) => (x === null ? '-' : `${x} ms`);
  return [
    `${m.scenario} on ${m.holder} (probe ${m.url} from ${m.probeFrom}; checks: ${m.checks.serverLine}${m.checks.timeoutCheckMs !== null ? `, timeout check ${m.checks.timeoutCheckMs} ms` : ''})`,
    `  marked DOWN ${f(m.markedDownMs)}, UP again ${f(m.markedUpMs)} after repair; repair at +${m.repairAfterMs} ms (${m.repairedBy})`,
    `  VIP left ${f(m.vipLeftMs)}, on ${m.vipMovedTo ?? '-'} ${f(m.vipMovedMs)}, back ${f(m.vipBackMs)} after repair`,
    `  failover: ${m.failover.failed}/${m.failover.total} failed ${JSON.stringify(m.failover.reasons)}, longest gap ${m.failover.longestGapMs} ms, answering again ${f(m.failover.answeringAgainMs)}; after DOWN: ${m.failedAfterDown ?? '-'} failed`,
    `  failback: ${m.failback.failed}/${m.failback.total} failed ${JSON.stringify(m.failback.reasons)}, longest gap ${m.failback.longestGapMs} ms`,
    `  VIP timeline: ${m.vipTimeline.join('; ')}`,
    describeProbe(m.report, m.t0Ms),
  ].join('\n');
}
