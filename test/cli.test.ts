// The command line as an operator meets it: help, usage errors and inventory errors exit 2 before
// any host is contacted (a local TCP listener standing in for sshd proves no connection was made).
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from './helpers/cli.js';

let server: Server;
let port = 0;
let connections = 0;
const dir = mkdtempSync(join(tmpdir(), 'kha-cli-'));

function inventory(name: string, body: string): string {
  const p = join(dir, name);
  writeFileSync(p, body.replace(/PORT/g, String(port)));
  return p;
}

describe('kha-deploy command line', () => {
  before(async () => {
    server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(() => server.close());

  it('--help lists every flag, the exit codes and the environment variables', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0, describeRun(r));
    for (const flag of ['--inventory', '-i', '--known-hosts', '--accept-new-host-keys', '--limit', '--output', '--verbose', '-v', '--ask-become-pass']) {
      assert.ok(r.stdout.includes(flag), `--help lacks ${flag}`);
    }
    assert.match(r.stdout, /Exit codes:[\s\S]*0 +converged[\s\S]*1 +a host step or gate failed[\s\S]*2 +usage or inventory error/);
    assert.match(r.stdout, /KHA_BECOME_PASS/);
  });

  it('check and status take the same options as deploy; their usage and inventory errors exit 2 and contact no host', async () => {
    const inv = inventory('ok2.ini', '[masters]\nm1 ansible_host=127.0.0.1 ansible_port=PORT\n[masters:vars]\nvip=127.0.0.100\n');
    for (const cmd of ['check', 'status']) {
      const help = await runCli([cmd, '--help']);
      assert.equal(help.code, 0, describeRun(help));
      for (const flag of ['--inventory', '--known-hosts', '--limit', '--output', '--verbose']) assert.ok(help.stdout.includes(flag), `${cmd} --help lacks ${flag}`);
      const missing = await runCli([cmd], { env: { ANSIBLE_CONFIG: join(dir, 'none.cfg'), ANSIBLE_INVENTORY: '' } });
      assert.equal(missing.code, 2, describeRun(missing));
      assert.match(missing.stderr, /no inventory given: no -i, no \$ANSIBLE_INVENTORY/);
      const limit = await runCli([cmd, '-i', inv, '--limit', 'm9', '--output', 'json', '--known-hosts', join(dir, 'kh')]);
      assert.equal(limit.code, 2, describeRun(limit));
      assert.equal(limit.json?.exitCode, 2);
      assert.match(limit.stderr, /unknown master\(s\) m9/);
    }
    const r = await runCli(['-i', inv, '--check', '--break-lock', '--known-hosts', join(dir, 'kh')]);
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /--check changes nothing/);
    assert.equal(connections, 0);
  });

  it('no -i and no inventory from the environment or ansible.cfg: exit 2, saying where it looked and what to do', async () => {
    const r = await runCli([], { env: { ANSIBLE_CONFIG: join(dir, 'none.cfg'), ANSIBLE_INVENTORY: '' } });
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /error: no inventory given: no -i, no \$ANSIBLE_INVENTORY, and no ansible\.cfg/);
    assert.match(r.stderr, /what to do: pass -i FILE\|DIR/);
  });

  it('an unknown flag is a usage error', async () => {
    const r = await runCli(['-i', 'x.ini', '--no-such-flag']);
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /Unknown argument/);
  });

  it('an inventory error exits 2 naming file, line and variable, and contacts no host', async () => {
    const inv = inventory('typo.ini', '[masters]\nm1 ansible_host=127.0.0.1 ansible_port=PORT\nm2 ansible_host=127.0.0.2 ansible_port=PORT\n[masters:vars]\nvip=127.0.0.100\nvip_prot=8443\n');
    const r = await runCli(['-i', inv, '--known-hosts', join(dir, 'kh')]);
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /typo\.ini:6: vip_prot:/);
    assert.match(r.stderr, /vip_port/);
    assert.equal(connections, 0);
  });

  it('--limit with an unknown master exits 2 and lists the masters', async () => {
    const inv = inventory('ok.ini', '[masters]\nm1 ansible_host=127.0.0.1 ansible_port=PORT\n[masters:vars]\nvip=127.0.0.100\n');
    const r = await runCli(['-i', inv, '--limit', 'm9', '--known-hosts', join(dir, 'kh')]);
    assert.equal(r.code, 2, describeRun(r));
    assert.match(r.stderr, /unknown master\(s\) m9/);
    assert.match(r.stderr, /masters are m1/);
    assert.equal(connections, 0);
  });

  it('--output json prints one JSON document even for an inventory error', async () => {
    const inv = inventory('novip.ini', '[masters]\nm1 ansible_host=127.0.0.1\n');
    const r = await runCli(['-i', inv, '--output', 'json']);
    assert.equal(r.code, 2, describeRun(r));
    assert.equal(r.json?.ok, false);
    assert.equal(r.json?.exitCode, 2);
    assert.match(r.json?.error, /vip/);
  });
});
