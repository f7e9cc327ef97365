// The drill's scripts run for real in the local sh, against stub systemctl / systemd-run / ip / curl.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { apiAnswersScript, handBackScript, probeScript, probeStopScript, startUnitScript, stopUnitScript, watchVipScript } from '../../src/drill/scripts.js';
import { parseProbeLines } from '../../src/drill/figures.js';
import type { ClusterSpec } from '../../src/types.js';

const dir = mkdtempSync(join(tmpdir(), 'kha-drill-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function stub(name: string, body: string): void {
  writeFileSync(join(dir, name), `#!/bin/sh\necho "${name} $*" >> "${dir}/log"\n${body}\n`);
  chmodSync(join(dir, name), 0o755);
}
function sh(script: string) {
  return spawnSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` }, timeout: 10_000 });
}
const log = () => readFileSync(join(dir, 'log'), 'utf8');
const reset = () => writeFileSync(join(dir, 'log'), '');

describe('drill scripts', () => {
  const spec = { vip: '172.16.86.100', family: 4, vipPort: 8443 } as ClusterSpec;

  it('every script is valid sh', () => {
    for (const s of [probeScript(spec, '1-a-away', { intervalMs: 50, timeoutMs: 1000 }, 60), probeStopScript('1-a-away'), watchVipScript(spec, 'on', 1000), apiAnswersScript(spec, { intervalMs: 50, timeoutMs: 1000 }, 5000), stopUnitScript('haproxy', 180), startUnitScript('haproxy'), handBackScript()]) {
      const r = spawnSync('sh', ['-n', '-c', s], { encoding: 'utf8' });
      assert.equal(r.status, 0, `${s}\n${r.stderr}`);
    }
  });

  it('stop arms the dead-man timer before it stops the unit, and stops nothing when the timer cannot be armed', () => {
    stub('systemctl', 'exit 0');
    stub('systemd-run', 'exit 0');
    reset();
    assert.equal(sh(stopUnitScript('keepalived', 180)).status, 0);
    const calls = log().trim().split('\n');
    const armed = calls.findIndex((l) => l.startsWith('systemd-run') && l.includes('--unit=kha-drill-restore-keepalived') && l.includes('--on-active=180') && l.endsWith('start keepalived.service'));
    const stopped = calls.indexOf('systemctl stop keepalived.service');
    assert.ok(armed >= 0 && stopped > armed, calls.join('\n'));

    stub('systemd-run', 'echo "systemd-run: unknown option --on-active" >&2; exit 1');
    reset();
    const r = sh(stopUnitScript('keepalived', 180));
    assert.notEqual(r.status, 0);
    assert.ok(!log().includes('systemctl stop keepalived.service'), log());
  });

  it('start disarms the timer only once the unit is active again', () => {
    stub('systemctl', 'case "$1" in is-active) exit 0;; esac; exit 0');
    reset();
    assert.equal(sh(startUnitScript('haproxy')).status, 0);
    assert.match(log(), /systemctl start haproxy\.service[\s\S]*systemctl is-active --quiet haproxy\.service[\s\S]*systemctl stop kha-drill-restore-haproxy\.timer/);
    stub('systemctl', 'case "$1" in is-active) exit 3;; esac; exit 0');
    reset();
    const r = sh(startUnitScript('haproxy'));
    assert.equal(r.status, 3);
    assert.match(r.stderr, /haproxy is not active after start/);
    assert.doesNotMatch(log(), /kha-drill-restore-haproxy\.timer/);
  });

  it('the watcher exits 0 once the VIP is on this host, 1 when it never arrives', () => {
    writeFileSync(join(dir, 'n'), '0');
    // The VIP shows up on the third look.
    stub('ip', `n=$(cat ${dir}/n); n=$((n+1)); echo $n > ${dir}/n; echo "1: lo    inet 127.0.0.1/8 scope host lo"; [ $n -ge 3 ] && echo "2: eth0    inet ${spec.vip}/32 scope global eth0"; exit 0`);
    assert.equal(sh(watchVipScript(spec, 'on', 2000)).status, 0);
    assert.equal(Number(readFileSync(join(dir, 'n'), 'utf8')), 3);
    stub('ip', `echo "2: eth0    inet ${spec.vip}0/32 scope global eth0"`);
    assert.equal(sh(watchVipScript(spec, 'on', 100)).status, 1);
    assert.equal(sh(watchVipScript(spec, 'off', 100)).status, 0);
  });

  it('the probe loop prints one line per probe until its time is up; 000 for no answer', () => {
    writeFileSync(join(dir, 'n'), '0');
    stub('curl', `n=$(cat ${dir}/n); n=$((n+1)); echo $n > ${dir}/n; if [ $((n % 2)) = 0 ]; then printf 000; exit 7; fi; printf 200`);
    const r = sh(probeScript(spec, `t${process.pid}`, { intervalMs: 100, timeoutMs: 500 }, 2).replaceAll('/run/kha-deploy', dir));
    assert.equal(r.status, 0, r.stderr);
    const samples = parseProbeLines(r.stdout);
    assert.ok(samples.length >= 3, r.stdout);
    assert.deepEqual(samples.slice(0, 2).map((s) => s.code), ['200', '000']);
    assert.match(log(), new RegExp(`curl -gsk .*https://${spec.vip.replace(/\./g, '\\.')}:${spec.vipPort}/readyz`));
  });
});
