// `node --import tsx bench/change.bench.ts` (issue 9): changes to a running cluster, measured on the lab.
// Converges the lab's inventory, then per scenario one kha-deploy run while a probe loop inside master3
// requests https://VIP:8443/version every 50 ms (1 s deadline) and the VIP is traced from kernel address
// events; prints failed probes, the longest gap and the VIP moves, then converges the lab's inventory again.
import { runCli } from '../test/helpers/cli.js';
import { measureChange, type ChangeFigures } from '../test/helpers/change.js';
import { deployArgs, labInventory } from '../test/helpers/inventory.js';
import { lab, labUp } from '../test/helpers/lab.js';

async function converge(): Promise<void> {
  const r = await runCli(deployArgs(lab.inventoryPath, '--output', 'json'));
  if (r.code !== 0) throw new Error(`kha-deploy exited ${r.code}\n${r.stdout}\n${r.stderr}`);
}

await labUp();
await converge();
const swapped = {
  replace: [
    [/^master1 ansible_host=(\S+) priority=150$/m, 'master1 ansible_host=$1 priority=140'],
    [/^master2 ansible_host=(\S+)$/m, 'master2 ansible_host=$1 priority=150'],
  ] as [RegExp, string][],
};
const scenarios: [string, string][] = [
  ['haproxy-only (haproxy_balance)', labInventory(['haproxy_balance=leastconn'])],
  ['keepalived-only (advert_int)', labInventory(['haproxy_balance=leastconn', 'advert_int=2'])],
  ['change of primary (swap)', labInventory(['haproxy_balance=leastconn', 'advert_int=2'], swapped)],
  ['back to the inventory', lab.inventoryPath],
  // Managed instance moves: the holder keeps answering for the VIP through its reload (src/vip-hold.ts).
  ['VRID 51 → 52', labInventory(['virtual_router_id=52'])],
  ['multicast → unicast', labInventory(['virtual_router_id=52', 'vrrp_unicast=true'])],
  ['back: unicast → multicast, VRID 51', lab.inventoryPath],
];
const rows: ChangeFigures[] = [];
try {
  for (const [name, inv] of scenarios) rows.push((await measureChange(name, inv)).figures);
} finally {
  await converge();
}
console.log('\nchanging a running cluster (probe loop from master3, 50 ms pace, 1 s deadline)');
console.log(`${'scenario'.padEnd(32)} exit   run s  probes failed  gap ms  order                        VIP moves`);
for (const f of rows) {
  console.log(
    `${f.scenario.padEnd(32)} ${String(f.exit).padStart(4)} ${f.seconds.toFixed(1).padStart(7)} ${String(f.probes).padStart(7)} ${String(f.failed).padStart(6)} ${String(f.longestGapMs).padStart(7)}  ${f.order.join('→').padEnd(28)} ${f.moves.join(', ') || 'none'}`,
  );
}
for (const f of rows) console.log(JSON.stringify(f));
