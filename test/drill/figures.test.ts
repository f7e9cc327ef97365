import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { drillRoles, drillText, parseProbeLines, probeFigures, type DrillReport } from '../../src/drill/figures.js';

/** Probe lines 100 ms apart, each taking 10 ms, with the given codes. */
function lines(codes: string[], t0 = 1_700_000_000_000_000_000n): string {
  return codes.map((c, i) => `@@KHA-PROBE ${t0 + BigInt(i) * 100_000_000n} ${t0 + BigInt(i) * 100_000_000n + 10_000_000n} ${c}`).join('\n');
}

describe('drill figures', () => {
  it('parses probe lines and ignores whatever else the shell printed', () => {
    const s = parseProbeLines(`Welcome to master3\n${lines(['200', '000', '403'])}\n@@KHA-PROBE garbage\n`);
    assert.deepEqual(
      s.map((x) => [x.code, x.ok]),
      [
        ['200', true],
        ['000', false],
        ['403', true],
      ],
    );
  });

  it('no failed probe: gap 0, recovered', () => {
    assert.deepEqual(probeFigures(parseProbeLines(lines(['200', '200', '401']))), { probes: 3, failed: 0, apiGapMs: 0, recovered: true });
  });

  it('the gap runs from the last answer before the failures to the first answer after them; the longest run counts', () => {
    // answers end at 10 ms; failures at 100..300 ms; next answer starts at 400 ms → 390 ms; a later single failure: 200-10=... shorter
    const f = probeFigures(parseProbeLines(lines(['200', '000', '503', '000', '200', '200', '000', '200'])));
    assert.equal(f.failed, 4);
    assert.equal(f.probes, 8);
    assert.equal(f.apiGapMs, 390);
    assert.equal(f.recovered, true);
  });

  it('failures until the end: not recovered, the gap runs to the last probe', () => {
    const f = probeFigures(parseProbeLines(lines(['200', '000', '000'])));
    assert.equal(f.recovered, false);
    assert.equal(f.apiGapMs, 200);
  });

  it('roles: next is the highest priority after the holder; the prober is neither when it can be', () => {
    assert.deepEqual(drillRoles(['m1', 'm2', 'm3'], 'm1'), { holder: 'm1', next: 'm2', prober: 'm3' });
    assert.deepEqual(drillRoles(['m1', 'm2', 'm3'], 'm2'), { holder: 'm2', next: 'm1', prober: 'm3' });
    assert.deepEqual(drillRoles(['m1', 'm2'], 'm1'), { holder: 'm1', next: 'm2', prober: 'm2' });
    assert.equal(drillRoles(['m1'], 'm1'), undefined);
  });

  it('the table shows both legs of each scenario and says whether the cluster was left as found', () => {
    const r: DrillReport = {
      ok: true,
      exitCode: 0,
      inventory: 'inv.ini',
      vip: '10.0.0.100',
      roles: { holder: 'm1', next: 'm2', prober: 'm3' },
      probe: { intervalMs: 50, timeoutMs: 1000 },
      restored: true,
      scenarios: [
        {
          scenario: 'keepalived',
          title: 'keepalived stopped on m1',
          away: { to: 'm2', vipMs: 420, probes: 40, failed: 2, apiGapMs: 310, recovered: true },
          back: { to: 'm1', vipMs: 1200, probes: 30, failed: 0, apiGapMs: 0, recovered: true },
        },
      ],
    };
    const t = drillText(r);
    assert.match(t, /keepalived stopped on m1\s+0\.42 s → m2\s+0\.31 s\s+2\/40\s+1\.20 s → m1\s+0\.00 s\s+0\/30/);
    assert.match(t, /cluster left as found: VIP on m1/);
    assert.match(drillText({ ...r, ok: false, exitCode: 1, restored: false, error: 'boom' }), /drill stopped: boom[\s\S]*NOT found as before/);
  });
});
