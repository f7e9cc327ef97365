// waitForGate against the in-memory host model: each attempt observes every master (one command
// each); the model answers with its VIP placement and kubectl's answer through the VIP.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectError, GateError } from '../../src/errors.js';
import { waitForGate, type GateOptions } from '../../src/gates/wait.js';
import type { RunEvent } from '../../src/types.js';
import { cluster } from '../fixtures/facts/cluster.js';
import { FakeCluster, fastPlaybook } from '../helpers/fake-host.js';

const ALL = ['master1', 'master2', 'master3'];

/** A converged cluster (VIP on master1) and gate options for the final check from master1. */
function setup(over: Partial<GateOptions> = {}) {
  const fc = new FakeCluster(cluster(), fastPlaybook()).converge();
  const events: RunEvent[] = [];
  const opts = (more: Partial<GateOptions> = {}): GateOptions => ({
    spec: fc.spec,
    gate: 'final-check',
    host: 'master1',
    remotes: ALL.map((n) => fc.session(n)),
    expectedHolder: 'master1',
    expectedInterface: 'ens192',
    kubectlOn: ALL,
    timeoutMs: 100,
    intervalMs: 5,
    emit: (e) => events.push(e),
    ...over,
    ...more,
  });
  const waits = () => events.filter((e): e is Extract<RunEvent, { type: 'gate-wait' }> => e.type === 'gate-wait');
  return { fc, events, opts, waits };
}

/** The holder waitForGate resolved with. */
function holderOf(passed: { holder: string }): string {
  return passed.holder;
}

/** Runs the gate, expecting a GateError; returns it. */
async function gateFails(p: Promise<unknown>): Promise<GateError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof GateError, `expected a GateError, got ${String(err)}`);
    return err;
  }
  assert.fail('the gate passed');
}

describe('waitForGate on fake masters', () => {
  it('passes at once when the VIP is on the expected master and kubectl answers through it: one observation per master', async () => {
    const { fc, opts, waits } = setup();
    assert.equal(holderOf(await waitForGate(opts())), 'master1');
    for (const n of ALL) assert.deepEqual(fc.host(n).tags(), ['observe kubectl']);
    assert.equal(waits().length, 0);
    fc.assertNoSurprises();
  });

  it('vipFirst: looks at addresses alone, then adds kubectl once the VIP is placed', async () => {
    const { fc, opts } = setup({ gate: 'vip-on-primary', kubectlOn: ['master1'], vipFirst: true });
    assert.equal(holderOf(await waitForGate(opts())), 'master1');
    assert.deepEqual(fc.host('master1').tags(), ['observe addr', 'observe kubectl']);
    assert.deepEqual(fc.host('master2').tags(), ['observe addr', 'observe addr'], 'kubectl runs only where the gate asks for it');
  });

  it('retries until the VIP arrives: one gate-wait per attempt that did not see it', async () => {
    const { fc, opts, waits } = setup({ vipFirst: true, gate: 'vip-on-primary', kubectlOn: ['master1'] });
    fc.host('master1').vipAppearsAfter(3);
    assert.equal(holderOf(await waitForGate(opts())), 'master1');
    assert.deepEqual(
      waits().map((w) => w.attempt),
      [1, 2, 3],
    );
    for (const w of waits()) assert.match(w.message, /the VIP 10\.0\.0\.100 is on no master \(expected on master1\)/);
    assert.deepEqual(fc.host('master1').tags(), ['observe addr', 'observe addr', 'observe addr', 'observe addr', 'observe kubectl']);
  });

  it('split brain: a GateError naming every holder, with the keepalived journal of each', async () => {
    const { fc, opts } = setup();
    fc.forceVip(['master1', 'master3']);
    fc.host('master1').journal.keepalived = ['Keepalived_vrrp[812]: (VI-kube-master) Entering MASTER STATE'];
    fc.host('master3').journal.keepalived = ['Keepalived_vrrp[977]: (VI-kube-master) Entering MASTER STATE (no adverts heard)'];
    const err = await gateFails(waitForGate(opts()));
    assert.match(err.message, /^SPLIT BRAIN: the VIP 10\.0\.0\.100 is on 2 hosts at once \(master1, master3\)/);
    assert.match(err.seen ?? '', /--- master1: journalctl -u keepalived\n.*Entering MASTER STATE/);
    assert.match(err.seen ?? '', /--- master3: journalctl -u keepalived\n.*no adverts heard/);
    assert.match(err.hint ?? '', /VRRP/);
    assert.deepEqual(fc.host('master2').commandsOf('journal'), [], 'only the holders are asked');
  });

  it("nobody holds the VIP: a GateError with keepalived's journal and its diagnosis", async () => {
    const { fc, opts } = setup();
    fc.forceVip([]);
    fc.host('master1').journal.keepalived = [
      'Keepalived_vrrp[812]: Netlink: error: Cannot assign requested address',
      'Keepalived_vrrp[812]: (VI-kube-master) Entering FAULT STATE',
    ];
    const err = await gateFails(waitForGate(opts()));
    assert.match(err.message, /^the VIP 10\.0\.0\.100 is on no master \(expected on master1\) after \d+s; keepalived put the instance in FAULT state/);
    assert.match(err.seen ?? '', /^journalctl -u keepalived on master1:\n.*Cannot assign requested address\n.*Entering FAULT STATE$/);
    assert.ok(fc.host('master1').kinds().includes('neighbour'), 'the primary was asked who answers for the VIP');
  });

  it('nobody of ours holds the VIP but a foreign machine answers for it: the error names its MAC', async () => {
    const { fc, opts } = setup();
    fc.forceVip([]);
    fc.host('master1').neighbour = '10.0.0.100 dev ens192 lladdr 52:54:00:aa:bb:cc REACHABLE';
    const err = await gateFails(waitForGate(opts()));
    assert.match(err.message, /another machine answers for 10\.0\.0\.100 \(MAC 52:54:00:aa:bb:cc\): it is not one of the masters in this run/);
  });

  it('the VIP on the wrong master', async () => {
    const { fc, opts } = setup();
    fc.forceVip(['master2']);
    const err = await gateFails(waitForGate(opts()));
    assert.match(err.message, /the VIP 10\.0\.0\.100 is on master2, expected on the primary master1/);
  });

  it('x509 through the VIP: the same answer 3 times in a row is final, long before the deadline', async () => {
    const { fc, opts, waits } = setup();
    fc.host('master2').kubectl = 'x509';
    const started = Date.now();
    const err = await gateFails(waitForGate(opts({ timeoutMs: 60_000 })));
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    assert.equal(waits().length, 2, 'two retries, then the third identical answer ends it');
    assert.match(err.message, /\(the same answer 3 times in a row, after \d+s\)/);
    assert.deepEqual(err.hosts, ['master2']);
  });

  it('a passed gate reports the holder, the Server Version it saw and how long it took', async () => {
    const { opts } = setup();
    const passed = await waitForGate(opts());
    assert.equal(passed.holder, 'master1');
    assert.match(passed.serverVersion ?? '', /^v\d+\.\d+\.\d+$/);
    assert.ok(passed.elapsedMs >= 0 && passed.elapsedMs < 5_000);
  });

  it('x509 through the VIP: the certificate diagnosis, on the master that saw it', async () => {
    const { fc, opts } = setup();
    fc.host('master2').kubectl = 'x509';
    const err = await gateFails(waitForGate(opts()));
    assert.equal(err.host, 'master2');
    assert.match(err.message, /failed the TLS check: the apiserver certificate does not list the VIP 10\.0\.0\.100 in its subjectAltNames/);
    assert.match(err.hint ?? '', /certSANs/);
    assert.match(err.seen ?? '', /x509: certificate is valid for/);
  });

  it('kubectl refused through the VIP: says no Server Version came back and points at haproxy', async () => {
    const { fc, opts } = setup();
    fc.host('master3').kubectl = 'refused';
    const err = await gateFails(waitForGate(opts()));
    assert.equal(err.host, 'master3');
    assert.match(err.message, /kubectl version through https:\/\/10\.0\.0\.100:8443 did not print a Server Version \(exit 1\)/);
    assert.match(err.hint ?? '', /haproxy listens on :8443/);
  });

  it('no kubectl on a master', async () => {
    const { fc, opts } = setup();
    fc.host('master1').kubectl = 'missing';
    const err = await gateFails(waitForGate(opts()));
    assert.match(err.message, /kubectl is not installed on this master/);
  });

  it('follows the model: with haproxy down on the primary the VIP moves (track script) and the gate says so', async () => {
    const { fc, opts } = setup();
    fc.host('master1').units.haproxy.active = 'failed';
    const err = await gateFails(waitForGate(opts()));
    assert.match(err.message, /the VIP 10\.0\.0\.100 is on master2, expected on the primary master1/);
  });

  it('a lost connection stops the gate at once with the ConnectError (no waiting out the deadline)', async () => {
    const { fc, opts } = setup();
    fc.host('master3').loseConnectionAt(1);
    const t0 = Date.now();
    await assert.rejects(waitForGate(opts({ timeoutMs: 5000 })), ConnectError);
    assert.ok(Date.now() - t0 < 1000);
  });

  it('an aborted signal (Ctrl-C) stops the wait at once, not as a GateError', async () => {
    const { fc, opts } = setup();
    fc.host('master1').kubectl = 'refused';
    const ac = new AbortController();
    const t0 = Date.now();
    await assert.rejects(
      waitForGate(opts({ timeoutMs: 5000, signal: ac.signal, emit: (e) => e.type === 'gate-wait' && ac.abort() })),
      (err: unknown) => !(err instanceof GateError),
    );
    assert.ok(Date.now() - t0 < 1000);
  });

  describe('every master can take over (health)', () => {
    const probes = new Map(ALL.map((n) => [n, { address: n, vipPort: 8443, monitorPort: 8404 }]));
    it('passes when keepalived is MASTER/BACKUP, every own haproxy serves and every backend is UP; asks each master once', async () => {
      const { fc, opts } = setup();
      const passed = await waitForGate(opts({ health: { hosts: ALL, probes } }));
      assert.equal(passed.holder, 'master1');
      for (const n of ALL) assert.deepEqual(fc.host(n).tags(), ['observe kubectl health']);
    });
    it('a backup in FAULT fails the gate, naming the master and the failing track from its journal', async () => {
      const { fc, opts } = setup();
      fc.host('master3').vrrpFault = 'VRRP_Script(chk_haproxy_serving) failed (exited with status 22)';
      const err = await gateFails(waitForGate(opts({ health: { hosts: ALL, probes } })));
      assert.deepEqual(err.hosts, ['master3']);
      assert.match(err.message, /keepalived on master3 is in FAULT state \(VRRP_Script\(chk_haproxy_serving\) failed \(exited with status 22\)\)/);
      assert.match(err.seen ?? '', /--- master3:\n.*Entering FAULT STATE/s);
    });
    it('a backend DOWN in a master\'s haproxy is named with its check status', async () => {
      const { fc, opts } = setup();
      fc.host('master1').backendsDown = { master2: 'L7STS' };
      const err = await gateFails(waitForGate(opts({ health: { hosts: ALL, probes } })));
      assert.match(err.message, /haproxy on master1 sees master2 DOWN \(L7STS\)/);
    });
    it('only the masters asked about are judged (those not configured yet are skipped)', async () => {
      const { fc, opts } = setup();
      fc.host('master3').vrrpFault = 'Track process haproxy_running: quorum lost';
      const passed = await waitForGate(opts({ health: { hosts: ['master1', 'master2'], probes } }));
      assert.equal(passed.holder, 'master1');
      assert.deepEqual(fc.host('master3').tags(), ['observe kubectl']);
    });
  });
});
