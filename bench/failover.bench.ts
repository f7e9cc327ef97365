// `npm run bench:failover`: failover, measured, on the 3-master lab. After a converged rollout
// (fresh hosts unless --no-reset), each scenario breaks something on the VIP holder (master1)
// while a probe loop inside master3 requests https://VIP:8443/version (/api for the unready case)
// every 50 ms with a 1 s deadline, then repairs it. Per scenario: when haproxy marked the apiserver
// DOWN, when the VIP moved, when the API answered through the VIP again, failed requests and the
// longest time without an answer; then the same on the way back. Printed as a table (medians and
// worst of the runs) and as JSON lines (one per run, `{"bench":"failover",...}`).
//
//   npm run bench:failover [-- --runs N] [-- --scenario NAME[,NAME]] [-- --no-reset] [-- --no-deploy]
// --no-reset keeps the hosts; --no-deploy measures what the lab runs now (it must be healthy: VIP on master1).
// Timing goals live here (MET/MISSED), not in the e2e tests.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { describeRun, runCli } from '../test/helpers/cli.js';
import { deployArgs } from '../test/helpers/inventory.js';
import { hostExec, lab, labUp, resetHosts, vipHolders } from '../test/helpers/lab.js';
import {
  answeringAgainMs,
  describeMeasurement,
  measureFailover,
  restoreHealthy,
  SCENARIO_TEXT,
  SCENARIOS,
  type FailoverMeasurement,
  type Scenario,
} from '../test/helpers/failover.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values: opt } = parseArgs({
  options: {
    runs: { type: 'string', default: process.env.FAILOVER_RUNS ?? '3' },
    scenario: { type: 'string' },
    'no-reset': { type: 'boolean', default: false },
    'no-deploy': { type: 'boolean', default: false },
    verbose: { type: 'boolean', short: 'v', default: false },
  },
});
const runs = Math.max(1, Number(opt.runs));
const scenarios = (opt.scenario ? opt.scenario.split(',') : [...SCENARIOS]) as Scenario[];
for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario ${s} (${SCENARIOS.join(', ')})`);
const holder = lab.hosts[0]!.name;

const log = (s: string) => process.stderr.write(`[bench:failover] ${s}\n`);
const rev = (() => {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'playbooks', 'src'], { cwd: ROOT, encoding: 'utf8' }).trim();
    return dirty ? `${head} + uncommitted changes in playbooks/ or src/` : head;
  } catch {
    return 'unknown';
  }
})();

await labUp();
if (!opt['no-reset']) {
  log('recreating the hosts (fresh, current lab image)');
  await resetHosts();
}
if (!opt['no-deploy']) {
  log('rolling out kha-deploy');
  const deploy = await runCli(deployArgs(lab.inventoryPath));
  if (deploy.code !== 0) throw new Error(`the rollout failed; nothing to measure:\n${describeRun(deploy)}`);
}
await restoreHealthy({ primary: holder });

// What was measured: the health checks and the VIP tracking as rendered on the holder.
const cfg = (await hostExec(holder, 'cat /etc/haproxy/haproxy.cfg')).stdout;
const ka = (await hostExec(holder, 'cat /etc/keepalived/keepalived.conf')).stdout;
const serverLine = /^\s*server\s.*$/m.exec(cfg)?.[0]?.trim() ?? '?';
const httpchk = /^\s*option\s+httpchk\s+(.*)$/m.exec(cfg)?.[1]?.trim();
const timeoutCheck = /^\s*timeout\s+check\s+(\S+)/m.exec(cfg)?.[1];
const weightOf = (block: string) => /\bweight\s+(-?\d+)/.exec(block)?.[1];
const tracking = [
  /^\s*vrrp_track_process\s/m.test(ka) ? 'vrrp_track_process haproxy' : '',
  ...[...ka.matchAll(/^\s*vrrp_script\s+(\S+)\s*\{([^}]*)\}/gm)].map((m) => `vrrp_script ${m[1]}${weightOf(m[2]!) ? ` (weight ${weightOf(m[2]!)})` : ''}`),
]
  .filter(Boolean)
  .join(', ');
const setup = {
  kha_deploy: opt['no-deploy'] ? 'as deployed on the lab (--no-deploy)' : rev,
  health_check: `${httpchk ? `GET ${httpchk.replace(/^GET\s+/, '')} over TLS` : 'TCP connect'}: ${serverLine.replace(/^server\s+\S+\s+\S+\s+/, '')}${timeoutCheck ? `, timeout check ${timeoutCheck}` : ''}`,
  keepalived_tracks: tracking || 'nothing',
};
log(`kha-deploy ${setup.kha_deploy}; haproxy checks: ${setup.health_check}; keepalived tracks: ${setup.keepalived_tracks}`);

const results = new Map<Scenario, FailoverMeasurement[]>();
for (let run = 1; run <= runs; run++) {
  for (const sc of scenarios) {
    log(`run ${run}/${runs}: ${sc} — ${SCENARIO_TEXT[sc]}`);
    const m = await measureFailover(sc, { holder, observeMs: 3000, downTimeoutMs: 30_000, moveTimeoutMs: 10_000, backTimeoutMs: 30_000 });
    await restoreHealthy({ primary: holder });
    if (opt.verbose) log(describeMeasurement(m));
    results.set(sc, [...(results.get(sc) ?? []), m]);
    const { report, vipTimeline, checks, ...rest } = m;
    console.log(
      JSON.stringify({
        bench: 'failover',
        run,
        ...rest,
        probe: { url: report.url, total: report.total, failed: report.failed, longestGapMs: report.longestGapMs, reasons: report.reasons, backends: report.backends, maxOkLatencyMs: report.maxOkLatencyMs },
        checks: { interMs: checks.interMs, fall: checks.fall, rise: checks.rise, timeoutCheckMs: checks.timeoutCheckMs, httpCheck: checks.httpCheck },
        vipTimeline,
        setup,
      }),
    );
  }
}
const holders = await vipHolders();

// ---------------------------------------------------------------------------------------------
// The table: median of the runs, worst in brackets when it differs.
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
type Pick = (m: FailoverMeasurement) => number | null;
function cell(ms: FailoverMeasurement[], pick: Pick, unit: 's' | 'ms' | 'n', none = '—'): string {
  const xs = ms.map(pick);
  const got = xs.filter((x): x is number => x !== null && Number.isFinite(x));
  if (got.length === 0) return xs.some((x) => x === Infinity) ? 'never' : none;
  const fmt = (v: number) => (unit === 's' ? (v / 1000).toFixed(2) : String(Math.round(v)));
  const med = fmt(median(got));
  const worst = fmt(Math.max(...got));
  const missing = got.length < xs.length ? ` (${xs.length - got.length}× ${xs.some((x) => x === Infinity) ? 'never' : none})` : '';
  return `${med}${worst !== med ? ` [${worst}]` : ''}${missing}`;
}
const cols: [string, (ms: FailoverMeasurement[]) => string][] = [
  ['scenario', (ms) => ms[0]!.scenario],
  ['DOWN in haproxy s', (ms) => cell(ms, (m) => m.markedDownMs, 's')],
  ['VIP moved s', (ms) => cell(ms, (m) => m.vipMovedMs, 's', 'stayed')],
  ['API answers again s', (ms) => cell(ms, (m) => m.failover.answeringAgainMs, 's', 'no failure') + (ms.some((m) => (m.failover.answeringAgainMs ?? 0) >= m.repairAfterMs) ? ' *' : '')],
  ['failed/sent', (ms) => `${cell(ms, (m) => m.failover.failed, 'n')}/${Math.round(median(ms.map((m) => m.failover.total)))}`],
  ['longest gap ms', (ms) => cell(ms, (m) => m.failover.longestGapMs, 'ms')],
  ['repair at s', (ms) => cell(ms, (m) => m.repairAfterMs, 's')],
  ['back: VIP s', (ms) => cell(ms, (m) => m.vipBackMs, 's', '—')],
  ['back: failed', (ms) => cell(ms, (m) => m.failback.failed, 'n')],
  ['back: gap ms', (ms) => cell(ms, (m) => m.failback.longestGapMs, 'ms')],
];
const rows = [...results.values()].map((ms) => cols.map(([, f]) => f(ms)));
const widths = cols.map(([h], i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
console.log(`\nfailover on the 3-master lab (${runs} run${runs > 1 ? 's' : ''} each; median [worst]); holder ${holder}, probes from ${lab.hosts.at(-1)!.name} every 50 ms, 1 s deadline`);
console.log(`kha-deploy ${setup.kha_deploy}; haproxy checks: ${setup.health_check}; keepalived tracks: ${setup.keepalived_tracks}`);
console.log(line(cols.map(([h]) => h)));
for (const r of rows) console.log(line(r));
console.log('DOWN: the holder\'s haproxy shows its apiserver DOWN, from the failure; "API answers again": first answer after the last failed request, from the failure;');
console.log('failed/longest gap: requests sent between the failure and its repair; back: after the repair (mode ready again, unit started or restarted by systemd).');
console.log('* some requests kept failing until the repair: the failure was never routed around.');

// ---------------------------------------------------------------------------------------------
// Timing goals
const goals: [string, boolean][] = [];
const all = (sc: Scenario, f: (m: FailoverMeasurement) => boolean) => (results.get(sc) ?? []).every(f);
const has = (sc: Scenario) => results.has(sc);
for (const sc of ['apiserver-unready', 'apiserver-hung'] as const) {
  if (!has(sc)) continue;
  goals.push([`${sc}: DOWN in haproxy within fall × inter + timeout check`, all(sc, (m) => m.markedDownMs !== null && m.markedDownMs <= m.checks.fall * m.checks.interMs + (m.checks.timeoutCheckMs ?? m.checks.interMs))]);
  goals.push([`${sc}: no failed request after DOWN`, all(sc, (m) => m.failedAfterDown === 0)]);
  goals.push([`${sc}: the VIP stays`, all(sc, (m) => m.vipLeftMs === null)]);
}
if (has('apiserver-stopped')) goals.push(['apiserver-stopped: no failed request', all('apiserver-stopped', (m) => m.failover.failed === 0)]);
if (has('haproxy-killed')) {
  // systemd (Restart=always) brings haproxy back faster than keepalived's check notices: the goal is the API, not a VIP move.
  goals.push(['haproxy-killed: API answers through the VIP again within 1 s', all('haproxy-killed', (m) => {
    const again = answeringAgainMs(m.report.samples, m.t0Ms);
    return again === null || again - m.t0Ms <= 1000;
  })]);
  goals.push(['haproxy-killed: a VIP that left went to the next master and came back', all('haproxy-killed', (m) => m.vipLeftMs === null || (m.vipMovedTo !== null && m.vipBackMs !== null))]);
}
if (has('haproxy-stopped')) {
  goals.push(['haproxy-stopped: VIP on the next master within 5 s', all('haproxy-stopped', (m) => m.vipMovedMs !== null && m.vipMovedMs <= 5000)]);
  goals.push(['haproxy-stopped: API answers through the VIP again within 1 s of the VIP moving', all('haproxy-stopped', (m) => m.vipMovedMs !== null && (m.failover.answeringAgainMs ?? 0) <= m.vipMovedMs + 1000)]);
}
if (has('keepalived-stopped')) {
  goals.push(['keepalived-stopped: VIP on the next master within 1 s', all('keepalived-stopped', (m) => m.vipMovedMs !== null && m.vipMovedMs <= 1000)]);
  goals.push(['keepalived-stopped: API answers through the VIP again within 2 s', all('keepalived-stopped', (m) => (m.failover.answeringAgainMs ?? 0) <= 2000)]);
}
goals.push(['every way back: no failed request after the repair', [...results.values()].flat().every((m) => m.failback.failed === 0)]);
goals.push([`VIP on ${holder} at the end`, holders.join() === holder]);
console.log('\ntargets:');
for (const [g, ok] of goals) console.log(`  ${ok ? 'MET   ' : 'MISSED'} ${g}`);
