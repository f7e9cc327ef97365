// A change of `vip` on a running cluster, end to end on the lab (the managed instance move of issue 9:
// src/plan-order.ts instanceMoveOrder). From the lab's converged state (VIP 172.16.86.100 on master1), a
// deploy with vip=172.16.86.101 (lab.spareVip, also in the apiserver certificates: lab/lib.sh) must
// converge in one run: the new VIP on master1 only, the old one on no master, kubectl through the new
// VIP from every master, keepalived running everywhere with the new VIP in its config. after() goes back.
// What is asserted is read from the hosts (docker exec), not from what kha-deploy reports.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { hostExec, lab, requireLab, unitInfo } from '../helpers/lab.js';
import { measureChange, vipOverlap, type ChangeFigures } from '../helpers/change.js';
import type { VipEvent } from '../helpers/failover.js';

const OLD = lab.vip;
const NEW = lab.spareVip;
const names = lab.hosts.map((h) => h.name);
const PROBE_FROM = 'master3';

/** Masters whose `ip -o -4 addr` shows `ip`, in host order. */
async function holdersOf(ip: string): Promise<string[]> {
  const seen = await Promise.all(
    names.map(async (h) => {
      const r = await hostExec(h, 'ip -o -4 addr show', { timeoutMs: 30_000 });
      assert.equal(r.code, 0, `ip addr on ${h}: ${r.stderr}`);
      return r.stdout.split('\n').some((l) => l.includes(` inet ${ip}/`));
    }),
  );
  return names.filter((_, i) => seen[i]);
}

/** `kubectl version` through https://IP:8443 inside `host`, with the lab's admin kubeconfig. */
function kubectlVia(host: string, ip: string) {
  return hostExec(host, `kubectl --kubeconfig /etc/kubernetes/admin.conf --server https://${ip}:8443 --request-timeout=8s version`);
}

/**
 * Both VIPs traced on every master from the kernel's address events (`ip -o monitor address` in each
 * host), time-stamped on arrival here (one clock for every host; a few ms of pipe latency).
 */
function traceBoth() {
  const t0 = performance.now();
  const events: Record<string, VipEvent[]> = { [OLD]: [], [NEW]: [] };
  const children = names.map((host) => {
    const c = lab.hosts.find((h) => h.name === host)!.container;
    // The monitor ends when our end of stdin closes (stop()): nothing is left running in the host.
    const child = spawn('docker', ['exec', '-i', c, 'bash', '-c', 'ip -o monitor address & m=$!; cat >/dev/null; kill $m'], { stdio: ['pipe', 'pipe', 'pipe'] });
    child.stdin.on('error', () => {});
    createInterface({ input: child.stdout }).on('line', (line) => {
      const atMs = performance.now() - t0;
      for (const ip of [OLD, NEW]) if (line.includes(` inet ${ip}/`)) events[ip]!.push({ atMs, host, present: !line.startsWith('Deleted') });
    });
    return child;
  });
  return {
    /** Records where each VIP is now (each host's first event: its state when the trace began); call once the monitors run. */
    async start() {
      await new Promise((r) => setTimeout(r, 500)); // the monitors subscribe before the state is read
      for (const ip of [OLD, NEW]) {
        const on = await holdersOf(ip);
        for (const host of names) events[ip]!.unshift({ atMs: -1, host, present: on.includes(host) });
      }
    },
    async stop() {
      await new Promise((r) => setTimeout(r, 300));
      await Promise.all(
        children.map(
          (child) =>
            new Promise<void>((res) => {
              if (child.exitCode !== null || child.signalCode !== null) return res();
              const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
              child.on('close', () => (clearTimeout(killer), res()));
              child.stdin.end();
            }),
        ),
      );
      return events;
    },
  };
}

/** First time `ip` was added on a master after the trace began (ms), and where. */
function firstAdd(events: readonly VipEvent[]): VipEvent | undefined {
  return events.find((e) => e.atMs >= 0 && e.present);
}
function lastDelete(events: readonly VipEvent[]): VipEvent | undefined {
  return events.filter((e) => e.atMs >= 0 && !e.present).at(-1);
}

describe(`a change of vip on a running cluster: ${OLD} → ${NEW} (lab)`, { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await holdersOf(OLD), ['master1']);
    assert.deepEqual(await holdersOf(NEW), []);
  });

  after(async () => {
    // Back to the lab's inventory: itself a vip change (NEW → OLD), one run.
    const t0 = Date.now();
    const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    const seconds = Math.round((Date.now() - t0) / 100) / 10;
    const old = await holdersOf(OLD);
    const spare = await holdersOf(NEW);
    console.log(`[vip-change] back to ${OLD}: exit ${r.code}, ${seconds} s; ${OLD} on [${old.join(', ')}], ${NEW} on [${spare.join(', ')}]`);
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(old, ['master1']);
    assert.deepEqual(spare, []);
  });

  it(`vip=${NEW}: one run, exit 0; ${NEW} on master1 only, ${OLD} nowhere, kubectl through ${NEW} from every master, keepalived running the new VIP everywhere`, async () => {
    const inv = labInventory([], { replace: [[/^vip=\S+$/m, `vip=${NEW}`]] });
    const trace = traceBoth();
    await trace.start();
    // measureChange's probe loop and VIP trace target lab.vip only, i.e. the OLD VIP here: they show how long the old
    // VIP kept answering and that it left without a second holder; the new VIP is traced by traceBoth() above.
    let m: Awaited<ReturnType<typeof measureChange>>;
    let events: Record<string, VipEvent[]>;
    try {
      m = await measureChange(`vip ${OLD} → ${NEW}`, inv, PROBE_FROM);
    } finally {
      events = await trace.stop();
    }
    const f: ChangeFigures = m.figures;
    const oldGone = lastDelete(events[OLD]!);
    const newUp = firstAdd(events[NEW]!);
    const newOverlap = vipOverlap(events[NEW]!);
    const figures = {
      scenario: f.scenario,
      exit: f.exit,
      seconds: f.seconds,
      order: f.order,
      // The probe loop and its trace: the OLD VIP (it answers until the holder's reload, then never again).
      oldVip: { probes: f.probes, failed: f.failed, maxHolders: f.maxHolders, left: oldGone ? `${oldGone.host} @${Math.round(oldGone.atMs)} ms` : 'never' },
      newVip: { firstOn: newUp ? `${newUp.host} @${Math.round(newUp.atMs)} ms` : 'never', maxHolders: newOverlap.maxHolders },
      // From the old VIP leaving its holder to the new one on a master (ms, this file's trace): no VIP at all meanwhile.
      noVipMs: oldGone && newUp ? Math.round(newUp.atMs - oldGone.atMs) : null,
    };
    console.log(`[vip-change] ${JSON.stringify(figures)}`);
    if (m.probeText) console.log(`[vip-change] probes through the old VIP ${OLD}:\n${m.probeText}`);
    assert.equal(m.run.code, 0, describeRun(m.run));

    assert.deepEqual(await holdersOf(NEW), ['master1'], `${NEW} must be on the primary only`);
    assert.deepEqual(await holdersOf(OLD), [], `${OLD} must be on no master`);
    assert.ok(newOverlap.maxHolders <= 1, `${NEW} on ${newOverlap.maxHolders} masters at once`);
    assert.ok((f.maxHolders ?? 0) <= 1, `${OLD} on ${f.maxHolders} masters at once during the run`);
    for (const h of names) {
      const k = await kubectlVia(h, NEW);
      assert.match(k.stdout, /Server Version/, `kubectl through ${NEW} on ${h}: ${k.stdout}${k.stderr}`);
      const conf = await hostExec(h, 'cat /etc/keepalived/keepalived.conf');
      assert.equal(conf.code, 0, conf.stderr);
      assert.ok(conf.stdout.includes(`${NEW}/`), `${h}: keepalived.conf does not name ${NEW}`);
      assert.ok(!conf.stdout.includes(`${OLD}/`), `${h}: keepalived.conf still names ${OLD}`);
      const u = await unitInfo(h, 'keepalived');
      assert.equal(u.activeState, 'active', `keepalived on ${h} is ${u.activeState}/${u.subState} after the move`);
    }
  });
});
