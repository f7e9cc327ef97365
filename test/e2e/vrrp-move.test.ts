// Managed VRRP instance moves (issue 9), measured on the lab: a probe loop inside master3 requests
// https://VIP:8443/version every 50 ms (1 s deadline each) while kha-deploy changes the VRRP instance
// itself; the kernel's address events in every host trace the VIP. A VRID change and a switch
// multicast → unicast each converge in ONE run with exit 0, the VIP never on two masters at once, never
// handed to another master, the API's longest gap under 3 s (the holder answers for the VIP from lo
// while its instance is recreated). Then VRRP multicast is blocked IN THE HOSTS, not on the machine running the tests: an nft table
// `inet kha_test` in every master's own network namespace drops IPv4 packets to 224.0.0.18 (IP protocol
// 112) on output and on input (blockVrrpMulticast; always removed again, and at the start in case an
// earlier run died, since every e2e file's requireLab() checks that multicast passes). With multicast
// VRRP (the control) the VIP ends up on several masters and `kha-deploy verify` fails on the split
// brain; with unicast (test multicast from master1 shown to pass before the block and to be dropped in
// master1 with it) one holder is elected and fails over when keepalived stops on it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli, type CliResult } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { hostExec, lab, labHost, requireLab, startUnit, stopUnit, vipHolders } from '../helpers/lab.js';
import { traceVip, waitForVipOn } from '../helpers/failover.js';
import { measureChange, vipOverlap, type ChangeFigures } from '../helpers/change.js';

const PROBE_FROM = 'master3';
/**
 * The issue's bound on the API's gap through the VIP during an instance move. The holder keeps answering
 * from a copy of the VIP on lo while its new instance waits out its master-down interval (≈ 3.4 s;
 * src/vip-hold.ts), so the lab measures ~0.1 s (the probe's pace) and no failed probe.
 */
const GAP_BOUND_MS = 3000;
/** Requests in flight at the reload may still fail: a few at most (none measured). */
const FAILED_BOUND = 5;
/** The in-host block: dropped on output (the sender's adverts) and on input (a neighbour's), counted. */
const BLOCK_TABLE = 'inet kha_test';
const BLOCK_RULESET = `table ${BLOCK_TABLE} {
  chain output {
    type filter hook output priority 0; policy accept;
    ip daddr 224.0.0.18 ip protocol 112 counter drop
  }
  chain input {
    type filter hook input priority 0; policy accept;
    ip daddr 224.0.0.18 ip protocol 112 counter drop
  }
}
`;

const figures: ChangeFigures[] = [];

async function measured(scenario: string, inventory: string): Promise<ChangeFigures> {
  const { figures: f, run: r, probeText } = await measureChange(scenario, inventory, PROBE_FROM);
  figures.push(f);
  console.log(`[vrrp-move] ${JSON.stringify(f)}`);
  if (probeText) console.log(probeText);
  assert.equal(r.code, 0, describeRun(r));
  assert.ok((r.json as { gates?: unknown[] } | undefined)?.gates, 'JSON output with gates');
  return f;
}

/**
 * Blocks (on) or lets through (off) VRRP multicast inside every master, through `docker exec`.
 * Off deletes the table wherever it is and fails only when it is still there afterwards.
 */
async function blockVrrpMulticast(on: boolean): Promise<void> {
  const script = on ? `nft delete table ${BLOCK_TABLE} 2>/dev/null; nft -f - && nft list table ${BLOCK_TABLE} >/dev/null` : `nft delete table ${BLOCK_TABLE} 2>/dev/null; ! nft list table ${BLOCK_TABLE} >/dev/null 2>&1`;
  const results = await Promise.all(lab.hosts.map(async (h) => [h.name, await hostExec(h.name, script, { ...(on ? { stdin: BLOCK_RULESET } : {}), timeoutMs: 30_000 })] as const));
  const failed = results.filter(([, r]) => r.code !== 0);
  if (failed.length) {
    throw new Error(`${on ? 'blocking' : 'unblocking'} VRRP multicast failed: ${failed.map(([h, r]) => `${h}: exit ${r.code} ${r.stdout}${r.stderr}`.trim()).join('; ')}`);
  }
}

// Test VRRP multicast (IP protocol 112 to 224.0.0.18, marked), as lab/up.sh --net sends it; the
// receiver waits 3 s in all, whatever other VRRP traffic (unicast adverts) it sees meanwhile.
const MARK = 'kha-vrrp-move';
const RECV_PY = `import socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, struct.pack("4s4s", socket.inet_aton("224.0.0.18"), socket.inet_aton(sys.argv[1])))
end = time.monotonic() + 3
while end - time.monotonic() > 0:
    s.settimeout(end - time.monotonic())
    try:
        data, addr = s.recvfrom(2048)
    except socket.timeout:
        break
    if data[20:].startswith(b"${MARK}"):
        print("received from", addr[0]); sys.exit(0)
print("NOTHING received")
`;
const SEND_PY = `import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
for _ in range(10):
    try:
        s.sendto(b"${MARK}", ("224.0.0.18", 0))
    except OSError as e:
        print("send:", e)
    time.sleep(0.2)
`;

/** Sends test VRRP multicast from master1; what master2 and master3 say they heard. */
async function multicastFromMaster1(): Promise<Record<string, string>> {
  const receivers = ['master2', 'master3'].map(async (h) => [h, await hostExec(h, `python3 - ${labHost(h).address}`, { stdin: RECV_PY, timeoutMs: 20_000 })] as const);
  await new Promise((r) => setTimeout(r, 500));
  await hostExec('master1', `python3 - ${labHost('master1').address}`, { stdin: SEND_PY, timeoutMs: 20_000 });
  return Object.fromEntries((await Promise.all(receivers)).map(([h, r]) => [h, `${r.stdout}${r.stderr}`.trim() || `exit ${r.code}, no output`]));
}

/** Packets the in-host block dropped so far, per host and chain (from the rules' counters). */
async function blockedPackets(): Promise<Record<string, { output: number; input: number }>> {
  const out: Record<string, { output: number; input: number }> = {};
  for (const h of lab.hosts) {
    const r = await hostExec(h.name, `nft list table ${BLOCK_TABLE}`, { timeoutMs: 30_000 });
    assert.equal(r.code, 0, `nft list table ${BLOCK_TABLE} on ${h.name}: ${r.stderr}`);
    const count = (chain: string) => Number(new RegExp(`chain ${chain} \\{[^}]*?counter packets (\\d+)`).exec(r.stdout)?.[1] ?? NaN);
    out[h.name] = { output: count('output'), input: count('input') };
  }
  return out;
}

describe('managed VRRP instance moves on the lab (issue 9)', { concurrency: false }, () => {
  const VRID = ['virtual_router_id=52'];
  const UNICAST = ['virtual_router_id=52', 'vrrp_unicast=true'];

  before(async () => {
    await requireLab();
    await blockVrrpMulticast(false);
    const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  after(async () => {
    await blockVrrpMulticast(false);
    for (const h of lab.hosts) await startUnit(h.name, 'keepalived').catch(() => {});
    // Back to the lab's own inventory: unicast → multicast and VRID 52 → 51, itself a managed move.
    const f = await measureChange('back: unicast → multicast, VRID 51', lab.inventoryPath, PROBE_FROM);
    figures.push(f.figures);
    console.log(`[vrrp-move] ${JSON.stringify(f.figures)}`);
    console.log(`[vrrp-move] figures: ${JSON.stringify(figures)}`);
    assert.equal(f.run.code, 0, describeRun(f.run));
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it("virtual_router_id 51 → 52: one run, exit 0, non-holders first with keepalived stopped, the holder last; never two holders, the API's gap under 3 s", async () => {
    const f = await measured('vrid 51 → 52', labInventory(VRID));
    assert.deepEqual(f.order, ['master2', 'master3', 'master1']);
    assert.ok((f.maxHolders ?? 0) <= 1, `split brain: the VIP on ${f.maxHolders} masters at once`);
    assert.ok(f.moves.length <= 1, `VIP moves: ${f.moves.join(', ')}`);
    assert.ok(f.longestGapMs <= GAP_BOUND_MS, `longest gap ${f.longestGapMs} ms`);
    assert.ok(f.failed <= FAILED_BOUND, `${f.failed} probes failed`);
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('control: multicast VRRP with 224.0.0.18 dropped in the hosts puts the VIP on several masters and verify says split brain (what unicast avoids)', async () => {
    const trace = await traceVip();
    let verify: CliResult;
    let dropped: Record<string, { output: number; input: number }>;
    try {
      await blockVrrpMulticast(true);
      // The backups stop hearing master1: each takes the VIP after its master-down interval (≈ 3.5 s).
      await trace.waitFor(() => trace.holders().length > 1, 10_000, 'a second holder');
      // kha-deploy's gates on the cluster as it is now (still VRID 52, multicast).
      verify = await runCli(['verify', ...deployArgs(labInventory(VRID)), '--gate-timeout', '5']);
      dropped = await blockedPackets();
    } finally {
      await blockVrrpMulticast(false);
    }
    await waitForVipOn('master1', 10_000);
    const deadline = Date.now() + 10_000;
    while ((await vipHolders()).length > 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    const events = await trace.stop();
    const o = vipOverlap(events);
    const said = `${verify.stdout}\n${verify.stderr}`.split('\n').find((l) => /split brain/i.test(l)) ?? '';
    const named = lab.hosts.map((h) => h.name).filter((n) => new RegExp(`\\b${n}\\b`).test(said));
    console.log(`[vrrp-move] control, multicast dropped in the hosts: up to ${o.maxHolders} holders at once; dropped adverts ${JSON.stringify(dropped)}; verify exit ${verify.code}: ${said.trim()}`);
    assert.ok(o.maxHolders > 1, `the VIP was on ${o.maxHolders} master(s) at most`);
    // The drops happened in the hosts: master1's adverts on its way out.
    assert.ok(dropped.master1!.output > 0, `master1 dropped no advert: ${JSON.stringify(dropped)}`);
    assert.equal(verify.code, 1, describeRun(verify));
    assert.match(said, /split brain/i, describeRun(verify));
    assert.ok(named.length > 1, `verify names ${named.length} holder(s): ${said}`);
    for (const n of named) assert.ok(events.some((e) => e.host === n && e.present), `verify names ${n}, which never held the VIP in the trace`);
    assert.deepEqual(await vipHolders(), ['master1'], 'one holder again once multicast passes');
  });

  it('multicast → unicast (vrrp_unicast=true): one run, exit 0, never two holders', async () => {
    const f = await measured('multicast → unicast', labInventory(UNICAST));
    assert.ok((f.maxHolders ?? 0) <= 1, `split brain: the VIP on ${f.maxHolders} masters at once`);
    assert.ok(f.moves.length <= 1, `VIP moves: ${f.moves.join(', ')}`);
    assert.ok(f.longestGapMs <= GAP_BOUND_MS, `longest gap ${f.longestGapMs} ms`);
    assert.ok(f.failed <= FAILED_BOUND, `${f.failed} probes failed`);
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('unicast with VRRP multicast dropped in the hosts: one holder, and failover works', async () => {
    const trace = await traceVip();
    try {
      // The probe hears test multicast while nothing blocks it ...
      const from1 = `received from ${labHost('master1').address}`;
      assert.deepEqual(await multicastFromMaster1(), { master2: from1, master3: from1 });
      await blockVrrpMulticast(true);
      // ... and with the block, neither backup hears it: dropped in master1 on its way out.
      const before = (await blockedPackets()).master1!.output;
      const heard = await multicastFromMaster1();
      const dropped = (await blockedPackets()).master1!.output - before;
      console.log(`[vrrp-move] unicast, multicast blocked in the hosts: test multicast from master1: ${JSON.stringify(heard)}, ${dropped} dropped in master1`);
      assert.deepEqual(heard, { master2: 'NOTHING received', master3: 'NOTHING received' });
      assert.ok(dropped > 0, 'master1 dropped none of the test multicast');
      // Longer than the master-down interval: with multicast, every backup would have taken the VIP by now.
      await new Promise((r) => setTimeout(r, 5000));
      assert.deepEqual(await vipHolders(), ['master1']);
      const t0 = Date.now();
      await stopUnit('master1', 'keepalived');
      await waitForVipOn('master2', 15_000);
      const failoverMs = Date.now() - t0;
      await startUnit('master1', 'keepalived');
      await waitForVipOn('master1', 20_000);
      const o = vipOverlap(await trace.stop());
      console.log(`[vrrp-move] unicast without multicast: failover to master2 after ${failoverMs} ms (at the test's clock); back on master1 by preemption, the VIP on 2 masters for ${o.overlapMs} ms at most (max holders ${o.maxHolders})`);
      // Only the moment of a handover (the new MASTER adds the VIP before the old one drops it), never a lasting second holder.
      assert.ok(o.overlapMs < 1000, `split brain: the VIP on ${o.maxHolders} masters for ${o.overlapMs} ms`);
    } finally {
      await trace.stop().catch(() => {});
      await blockVrrpMulticast(false);
    }
  });
});
