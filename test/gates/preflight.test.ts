// Preflight readyz: the probe script runs for real under sh with stub curl/openssl on a PATH that
// holds only what the script needs; the verdicts are pure.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HostStepError, ManyErrors } from '../../src/errors.js';
import { judgeReadyz, parseReadyzProbe, preflightReadyz, readyzProbeScript } from '../../src/gates/preflight.js';
import type { RunEvent } from '../../src/types.js';
import { cluster, host } from '../fixtures/facts/cluster.js';

/** A bin dir with sh's helpers (awk, head, timeout) and the given stubs; nothing else. */
function binWith(stubs: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'kha-preflight-'));
  for (const tool of ['awk', 'head', 'timeout', 'cat']) {
    const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    symlinkSync(real, join(dir, tool));
  }
  for (const [name, body] of Object.entries(stubs)) writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return dir;
}
const runProbe = (bin: string, address = '10.0.0.11') =>
  spawnSync('/bin/sh', ['-c', readyzProbeScript(address, 6443)], { encoding: 'utf8', env: { PATH: bin } });

describe('the readyz probe script', () => {
  it('asks with curl, anonymously, without verifying the certificate', () => {
    const args = join(mkdtempSync(join(tmpdir(), 'kha-curl-')), 'args');
    const bin = binWith({ curl: `echo "$*" > ${args}; printf 401` });
    const r = runProbe(bin);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(parseReadyzProbe(r.stdout), { code: '401', tool: 'curl' });
    const sent = readFileSync(args, 'utf8');
    assert.match(sent, /^-sk -o \/dev\/null -w %\{http_code\} -m 5 https:\/\/10\.0\.0\.11:6443\/readyz$/m);
    assert.doesNotMatch(sent, /-H|--cert|Authorization/);
  });
  it('falls back to openssl s_client and reads the status line', () => {
    const bin = binWith({ openssl: `cat >/dev/null; printf 'HTTP/1.1 403 Forbidden\\r\\nContent-Length: 0\\r\\n'` });
    assert.deepEqual(parseReadyzProbe(runProbe(bin).stdout), { code: '403', tool: 'openssl' });
    const ok = binWith({ openssl: `cat >/dev/null; printf 'HTTP/1.1 200 OK\\r\\n'` });
    assert.deepEqual(parseReadyzProbe(runProbe(ok, 'fd00::11').stdout), { code: '200', tool: 'openssl' });
  });
  it('says when nothing answered, and when there is no client at all', () => {
    assert.deepEqual(parseReadyzProbe(runProbe(binWith({ curl: 'exit 7' })).stdout), { code: '000', tool: 'curl' });
    assert.deepEqual(parseReadyzProbe(runProbe(binWith({})).stdout), { code: '', tool: 'none' });
  });
});

describe('judgeReadyz', () => {
  const spec = cluster();
  const m1 = host(spec, 'master1');
  it('200 passes; 401/403 refuse; not ready or silent warn', () => {
    assert.deepEqual(judgeReadyz(spec, m1, { code: '200', tool: 'curl' }), { kind: 'ok' });
    for (const code of ['401', '403']) {
      const v = judgeReadyz(spec, m1, { code, tool: 'curl' });
      assert.equal(v.kind, 'refused');
      assert.match((v as { message: string }).message, new RegExp(`https://10\\.0\\.0\\.11:6443/readyz answered ${code} to a request without credentials`));
    }
    assert.equal(judgeReadyz(spec, m1, { code: '500', tool: 'curl' }).kind, 'warn');
    assert.equal(judgeReadyz(spec, m1, { code: '000', tool: 'openssl' }).kind, 'warn');
    assert.equal(judgeReadyz(spec, m1, { code: '', tool: 'none' }).kind, 'warn');
  });
});

describe('preflightReadyz', () => {
  const spec = cluster();
  const answer = (name: string, code: string) => ({ spec: host(spec, name), output: `kha-facts end\n@@KHA-READYZ code=${code} tool=curl\n` });
  it('refuses every master whose apiserver answers 401/403, naming both ways out; warns on the others', () => {
    const events: RunEvent[] = [];
    assert.throws(
      () => preflightReadyz({ spec, answers: [answer('master1', '401'), answer('master2', '200'), answer('master3', '500')], emit: (e) => events.push(e) }),
      (err: unknown) => {
        assert.ok(err instanceof ManyErrors);
        assert.deepEqual(err.errors.map((e) => (e as HostStepError).host), ['master1']);
        assert.match(err.errors[0]!.hint ?? '', /--anonymous-auth.*haproxy_health_check=tcp/);
        assert.match(err.message, /refuse anonymous \/readyz: no host was changed/);
        return true;
      },
    );
    assert.deepEqual(events.map((e) => e.type === 'warning' && e.host), ['master3']);
  });
  it('passes quietly when every apiserver answers 200', () => {
    const events: RunEvent[] = [];
    preflightReadyz({ spec, answers: ['master1', 'master2', 'master3'].map((n) => answer(n, '200')), emit: (e) => events.push(e) });
    assert.deepEqual(events, []);
  });
});
