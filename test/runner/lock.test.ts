import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { LOCKED_EXIT, READY_MARK, lockScript } from '../../src/runner/lock.js';

// Runs the real script under the local sh + flock: the lock is the kernel's, not a simulation.
it('holds the lock until stdin closes, refuses a second run meanwhile, and frees it after', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kha-lock-'));
  const first = spawn('sh', ['-c', lockScript('echo facts-here', 'run one', dir)]);
  let out = '';
  await new Promise<void>((resolve) => {
    first.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes(READY_MARK)) resolve();
    });
  });
  assert.match(out, /^facts-here\n@@KHA-READY\n$/);
  assert.equal(readFileSync(join(dir, 'kha-deploy.owner'), 'utf8'), 'run one\n');

  const second = spawnSync('sh', ['-c', lockScript('echo should-not-run', 'run two', dir)], { input: '' });
  assert.equal(second.status, LOCKED_EXIT);
  assert.equal(second.stdout.toString(), '');
  assert.match(second.stderr.toString(), /another kha-deploy run holds .*\nrun one/);

  const exited = new Promise<number | null>((r) => first.on('exit', r));
  first.stdin.end();
  assert.equal(await exited, 0);

  const third = spawnSync('sh', ['-c', lockScript('echo third', 'run three', dir)], { input: '' });
  assert.equal(third.status, 0);
  assert.match(third.stdout.toString(), /third/);
});
