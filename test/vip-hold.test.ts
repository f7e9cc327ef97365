// Holding the VIP through an instance move: the scripts under sh, with ip, systemd-run and systemctl
// replaced by stubs that log their arguments (the lab e2e test measures the real thing).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { holdVipScript, releaseVipScript } from '../src/vip-hold.js';

function stubs(ipShow: string): { dir: string; log: string } {
  const dir = mkdtempSync(join(tmpdir(), 'kha-viphold-'));
  const log = join(dir, 'log');
  for (const cmd of ['ip', 'systemd-run', 'systemctl']) {
    const body = cmd === 'ip' ? `case "$*" in *show*)  printf '%s\\n' ${JSON.stringify(ipShow)}; exit 0;; esac\n` : '';
    writeFileSync(join(dir, cmd), `#!/bin/sh\necho "${cmd} $*" >>${JSON.stringify(log)}\n${body}exit 0\n`);
    chmodSync(join(dir, cmd), 0o755);
  }
  writeFileSync(log, '');
  return { dir, log };
}

function sh(script: string, dir: string): string {
  return execFileSync('sh', ['-c', script], { encoding: 'utf8', env: { ...process.env, PATH: `${dir}:${process.env.PATH}` } });
}

describe('vip-hold scripts', () => {
  it('hold: the dead-man timer first, then the copy on lo', () => {
    const { dir, log } = stubs('');
    sh(holdVipScript('10.0.0.100', 'eth0', 33), dir);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    const timer = lines.findIndex((l) => l.startsWith('systemd-run '));
    const add = lines.findIndex((l) => l.startsWith('ip addr add '));
    assert.ok(timer >= 0 && add > timer, lines.join('\n'));
    assert.match(lines[timer]!, /--unit=kha-deploy-vip-hold --on-active=33 \S*ip addr del 10\.0\.0\.100\/32 dev lo$/);
    assert.equal(lines[add], 'ip addr add 10.0.0.100/32 dev lo');
  });
  it('hold, IPv6: /128 on lo without duplicate address detection', () => {
    const { dir, log } = stubs('');
    sh(holdVipScript('fd00::64', 'eth0', 10), dir);
    assert.match(readFileSync(log, 'utf8'), /^ip addr add fd00::64\/128 dev lo nodad$/m);
  });
  it("release: once keepalived's VIP/32 is back, the copy and the timer go at once", () => {
    const { dir, log } = stubs('2: eth0    inet 10.0.0.100/32 scope global eth0');
    const out = sh(releaseVipScript('10.0.0.100', 'eth0', 5), dir);
    assert.match(out, /@@KHA-VIPHOLD back/);
    const lines = readFileSync(log, 'utf8').trim().split('\n');
    assert.equal(lines.filter((l) => l.startsWith('ip -o addr show')).length, 1, 'no waiting once it is there');
    assert.ok(lines.includes('ip addr del 10.0.0.100/32 dev lo'));
    assert.ok(lines.includes('systemctl stop kha-deploy-vip-hold.timer'));
  });
  it('release: the VIP not on keepalived\'s interface is not "back"; it waits, then removes the copy anyway', () => {
    const { dir, log } = stubs('2: eth0    inet 10.0.0.11/24 scope global eth0');
    const t0 = Date.now();
    const out = sh(releaseVipScript('10.0.0.100', 'eth0', 0.3), dir);
    assert.match(out, /@@KHA-VIPHOLD not-back/);
    assert.ok(Date.now() - t0 >= 250);
    assert.ok(readFileSync(log, 'utf8').includes('ip addr del 10.0.0.100/32 dev lo'));
  });
});
