// The gates prove every master can take the VIP over, on the lab: a backup whose haproxy is active
// but serves nothing, or a haproxy that sees an apiserver DOWN, fails the final check with the reason
// the host shows, although the VIP and kubectl through it are fine. (A keepalived in FAULT is judged
// from its journal lines: unit-tested in test/gates/observe.test.ts with keepalived 2.2.7's wording.)
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { setApiserverMode } from '../helpers/failover.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, resetHosts, startUnit, stopUnit, vipHolders } from '../helpers/lab.js';

const converge = async () => {
  const r = await runCli(deployArgs(lab.inventoryPath));
  assert.equal(r.code, 0, `did not converge: ${describeRun(r)}`);
  assert.deepEqual(await vipHolders(), ['master1']);
};

/** Polls `check` on the host until it exits 0 (bounded). */
async function until(host: string, check: string, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await hostExec(host, check)).code !== 0) {
    assert.ok(Date.now() < deadline, `${what} did not happen within ${timeoutMs} ms on ${host}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

describe('gates: every master can take over', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await converge();
  });

  it('a backup whose haproxy is "active" but serves nothing (frozen) fails the final check; kha-deploy names it', async () => {
    // systemd still says active and the process exists: only asking haproxy itself shows the problem.
    await hostExec('master3', 'systemctl kill -s SIGSTOP haproxy');
    try {
      const r = await runCli(deployArgs(lab.inventoryPath, '--gate-timeout', '5', '--output', 'json'));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master3\] final-check: .*master3's own haproxy does not serve: GET \/readyz on its own address, port 8443: nothing answered/);
      assert.match(r.stderr, /haproxy's monitor on master3 \(127\.0\.0\.1\) did not answer/);
      assert.deepEqual(r.json?.vipHolders, ['master1'], 'the VIP itself was fine');
      assert.deepEqual(
        r.json.hosts.map((h: { host: string; failed: number; changed: number }) => [h.host, h.changed, h.failed]),
        [['master1', 0, 0], ['master2', 0, 0], ['master3', 0, 1]],
      );
    } finally {
      await hostExec('master3', 'systemctl kill -s SIGCONT haproxy');
    }
    await converge();
  });

  it('an apiserver down is seen DOWN by every haproxy: the final check names it with its check status', async () => {
    await stopUnit('master2', 'kube-apiserver');
    try {
      // haproxy marks it DOWN after fall x inter (3 x 2 s).
      await until('master1', `curl -s 'http://127.0.0.1:8404/stats;csv' | grep -q '^kube-master,master2,.*DOWN'`, 'master2 DOWN in haproxy');
      const r = await runCli(deployArgs(lab.inventoryPath, '--gate-timeout', '5'));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /haproxy on master1 sees master2 DOWN \(L4CON\)/);
      // The preflight read the same before anything: a warning, not a refusal (only 401/403 refuse).
      assert.match(r.stdout, /warning: \[master2\] https:\/\/172\.16\.86\.12:6443\/readyz did not answer/);
    } finally {
      await startUnit('master2', 'kube-apiserver');
    }
    await until('master1', `curl -s 'http://127.0.0.1:8404/stats;csv' | grep -q '^kube-master,master2,.*UP'`, 'master2 UP again in haproxy');
    await converge();
  });

  it('preflight: an apiserver that refuses anonymous /readyz (401) stops the run before any host changes; haproxy_health_check=tcp is the way out', async () => {
    await resetHosts(['master2']); // a fresh master: the change would be an install, so "nothing changed" is visible
    const before = await Promise.all(['master1', 'master3'].map((h) => hostExec(h, 'stat -c "%n %Y %i" /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf')));
    await setApiserverMode('master2', 'anonymous-denied');
    try {
      const r = await runCli(deployArgs(lab.inventoryPath));
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stderr, /\[master2\] preflight: https:\/\/172\.16\.86\.12:6443\/readyz answered 401 to a request without credentials/);
      assert.match(r.stderr, /--anonymous-auth=true.*haproxy_health_check=tcp/s);
      assert.match(r.stderr, /no host was changed/);
      const m2 = await hostExec('master2', 'command -v keepalived haproxy; ls /etc/keepalived 2>/dev/null');
      assert.equal(m2.stdout.trim(), '', 'master2 was changed');
      const after = await Promise.all(['master1', 'master3'].map((h) => hostExec(h, 'stat -c "%n %Y %i" /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf')));
      assert.deepEqual(after.map((x) => x.stdout), before.map((x) => x.stdout));
      // The TCP mode does not ask /readyz: the same cluster deploys.
      const tcp = await runCli(deployArgs(labInventory(['haproxy_health_check=tcp'])));
      assert.equal(tcp.code, 0, describeRun(tcp));
    } finally {
      await setApiserverMode('master2', 'ready');
    }
    await converge();
  });

  it('every apiserver unready at once: every master\'s serving check fails by the same weight, so the VIP stays where it is', async () => {
    await converge();
    const names = ['master1', 'master2', 'master3'];
    for (const h of names) await setApiserverMode(h, 'unready');
    try {
      // Every haproxy marks every backend DOWN (fall x fastinter), every monitor says 503, every keepalived lowers itself.
      await until('master1', `curl -s 'http://127.0.0.1:8404/stats;csv' | grep '^kube-master,master' | grep -vq DOWN; test $? -eq 1`, 'every backend DOWN');
      await until('master1', `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8404/healthz | grep -q 503`, 'the monitor saying 503');
      const seen = new Set<string>();
      const end = Date.now() + 10_000; // several check intervals (2 s) after the checks failed
      while (Date.now() < end) {
        seen.add((await vipHolders()).join(',') || '(nobody)');
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.deepEqual([...seen], ['master1'], 'the VIP moved or vanished while every apiserver was down');
    } finally {
      for (const h of names) await setApiserverMode(h, 'ready');
    }
    await converge();
  });
});
