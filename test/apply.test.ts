import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { serviceScript, writeFileScript } from '../src/apply.js';

// The write script is executed for real by the local sh: it is the code that runs on the hosts.
function write(path: string, content: string, stdin = content, keep = 3, validate = 'grep -q "^valid" {file}') {
  const script = writeFileScript({ op: 'write-file', path, content, mode: '0640', validate }, keep);
  return spawnSync('sh', ['-c', script], { input: stdin, encoding: 'utf8' });
}

describe('writeFileScript', () => {
  it('creates a new file with the mode and reports no backup', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const r = write(join(dir, 'haproxy.cfg'), 'valid one\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(join(dir, 'haproxy.cfg'), 'utf8'), 'valid one\n');
    assert.equal(spawnSync('stat', ['-c', '%a', join(dir, 'haproxy.cfg')], { encoding: 'utf8' }).stdout.trim(), '640');
    assert.match(r.stdout, /^backup=$/m);
    assert.deepEqual(readdirSync(dir), ['haproxy.cfg']);
  });

  it('keeps the previous file as a timestamped backup and prunes old backups', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const p = join(dir, 'haproxy.cfg');
    for (let i = 1; i <= 5; i++) assert.equal(write(p, `valid v${i}\n`, undefined, 3).status, 0);
    assert.equal(readFileSync(p, 'utf8'), 'valid v5\n');
    const backups = readdirSync(dir).filter((f) => f.includes('.kha-backup-')).sort();
    assert.equal(backups.length, 3);
    assert.deepEqual(
      backups.map((b) => readFileSync(join(dir, b), 'utf8')),
      ['valid v2\n', 'valid v3\n', 'valid v4\n'],
    );
  });

  it('leaves the old file untouched and shows the validator output when validation fails', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const p = join(dir, 'keepalived.conf');
    writeFileSync(p, 'old\n');
    const r = write(p, 'broken\n', undefined, 3, 'sh -c "echo line 3: unknown keyword >&2; exit 1" -- {file}');
    assert.equal(r.status, 65);
    assert.match(r.stderr, /line 3: unknown keyword/);
    assert.equal(readFileSync(p, 'utf8'), 'old\n');
    assert.deepEqual(readdirSync(dir), ['keepalived.conf']);
  });

  it('refuses content that arrived incomplete (a dropped connection) and leaves no temp file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-apply-'));
    const p = join(dir, 'haproxy.cfg');
    writeFileSync(p, 'valid old\n');
    const r = write(p, 'valid complete content\nserver s2\n', 'valid complete content\n');
    assert.equal(r.status, 66);
    assert.match(r.stderr, /incomplete/);
    assert.equal(readFileSync(p, 'utf8'), 'valid old\n');
    assert.deepEqual(readdirSync(dir), ['haproxy.cfg']);
  });

  it('quotes hostile paths', () => {
    const dir = mkdtempSync(join(tmpdir(), "kha apply '$(touch pwned)"));
    const r = write(join(dir, 'x.cfg'), 'valid\n');
    assert.equal(r.status, 0, r.stderr);
    assert.ok(existsSync(join(dir, 'x.cfg')));
    assert.ok(!existsSync('pwned'));
  });
});

describe('serviceScript', () => {
  it('reloads, checks the unit is still active and records the applied config hash', () => {
    const s = serviceScript({ op: 'service', unit: 'haproxy', action: 'reload', recordApplied: 'abc123' });
    assert.match(s, /^systemctl reload haproxy\.service$/m);
    assert.match(s, /systemctl is-active --quiet haproxy\.service \|\|/);
    assert.match(s, /printf '%s\\n' abc123 > \/var\/lib\/kha-deploy\/haproxy\.applied/);
  });
  it('never restarts keepalived for a reload', () => {
    const s = serviceScript({ op: 'service', unit: 'keepalived', action: 'reload' });
    assert.doesNotMatch(s, /restart/);
  });
});
