// The network preflight (issue 9) against a fourth lab container, the bastion (172.16.86.14: the host
// image, not a master, in no inventory), playing the foreign machine:
// - a foreign VRRP router: its own keepalived on our virtual_router_id (51) with another VIP;
// - a foreign owner of the VIP: 172.16.86.100 configured on its eth0 by hand.
// With keepalived stopped on the masters (nobody runs our instance, nobody holds the VIP), a deploy
// refuses before any host is changed: exit 1, naming the router's address and VIPs (and a free VRID)
// or the owner's MAC; every master's files, MainPIDs and stopped keepalived are as before. The free
// VRID it suggests then works with the foreign router still running. The subnet check needs no
// foreign machine: keepalived pointed at an interface outside the VIP's subnet (lo) is refused the same way.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { describeRun, runCli } from '../helpers/cli.js';
import { deployArgs, labInventory } from '../helpers/inventory.js';
import { bastionExec, hostExec, lab, labUp, requireLab, startUnit, stopUnit, vipHolders } from '../helpers/lab.js';
import { waitForVipOn } from '../helpers/failover.js';

const names = lab.hosts.map((h) => h.name);
const FOREIGN_VIP = '172.16.86.200';
const FOREIGN_CONF = `vrrp_instance FOREIGN {
    state BACKUP
    priority 100
    interface eth0
    virtual_router_id 51
    advert_int 1
    virtual_ipaddress {
        ${FOREIGN_VIP}/32 dev eth0
    }
}
`;

/** What must not change on a refused run: haproxy's and keepalived's MainPIDs and the managed files' mtimes. */
async function snapshot(): Promise<string[]> {
  const r = await Promise.all(
    names.map((h) => hostExec(h, 'systemctl show -p MainPID --value haproxy keepalived; stat -c "%n %Y" /etc/haproxy/haproxy.cfg /etc/keepalived/keepalived.conf; ls /etc/keepalived /etc/haproxy')),
  );
  return r.map((x) => x.stdout);
}

async function keepalivedStates(): Promise<string[]> {
  return Promise.all(names.map(async (h) => (await hostExec(h, 'systemctl is-active keepalived')).stdout.trim()));
}

describe('network preflight against a foreign machine on the lab (issue 9)', { concurrency: false }, () => {
  before(async () => {
    await requireLab();
    await labUp({ bastion: true });
    const r = await runCli(deployArgs(lab.inventoryPath));
    assert.equal(r.code, 0, describeRun(r));
    for (const h of names) await stopUnit(h, 'keepalived');
    assert.deepEqual(await vipHolders(), []);
  });

  after(async () => {
    await bastionExec(`systemctl stop keepalived 2>/dev/null; ip addr del ${lab.vip}/24 dev eth0 2>/dev/null; :`);
    await labUp(); // removes the bastion
    for (const h of names) await startUnit(h, 'keepalived');
    await waitForVipOn('master1', 30_000);
    const r = await runCli(deployArgs(lab.inventoryPath));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await vipHolders(), ['master1']);
  });

  it('a router that is not a master advertises our VRID: exit 1 naming its address and VIP and a free VRID; nothing changed', async () => {
    const install = await bastionExec(
      // The bastion's lab-init (which points apt at the lab's apt-cacher-ng) is masked: point it here.
      `echo 'Acquire::http::Proxy "http://${lab.gateway}:3142/";' >/etc/apt/apt.conf.d/01proxy
       command -v keepalived >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q keepalived >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }
       printf '%s' '${FOREIGN_CONF}' >/etc/keepalived/keepalived.conf && systemctl restart keepalived`,
      { timeoutMs: 300_000 },
    );
    assert.equal(install.code, 0, install.stdout + install.stderr);
    const vipUp = Date.now() + 15_000;
    while (!(await bastionExec('ip -o addr show dev eth0')).stdout.includes(` ${FOREIGN_VIP}/`)) {
      assert.ok(Date.now() < vipUp, 'the foreign keepalived never became MASTER');
      await new Promise((r) => setTimeout(r, 250));
    }
    const before = await snapshot();
    const r = await runCli(deployArgs(lab.inventoryPath));
    const out = r.stdout + r.stderr;
    console.log(`[preflight] foreign VRRP router: exit ${r.code}`);
    assert.equal(r.code, 1, describeRun(r));
    assert.match(out, /virtual_router_id 51 is already in use on this network: 172\.16\.86\.14 \(priority 100, VRRPv2, VIPs 172\.16\.86\.200/);
    assert.match(out, /set virtual_router_id=52 \(no advert heard on it\)/);
    assert.match(out, /no host was changed/);
    assert.deepEqual(await snapshot(), before);
    assert.deepEqual(await keepalivedStates(), ['inactive', 'inactive', 'inactive']);
    assert.deepEqual(await vipHolders(), []);
  });

  it('the suggested VRID (52) converges beside the foreign router on 51, and the listen is skipped on the rerun', async () => {
    const inv = labInventory(['virtual_router_id=52']);
    const r = await runCli(deployArgs(inv));
    assert.equal(r.code, 0, describeRun(r));
    assert.deepEqual(await vipHolders(), ['master1']);
    assert.ok((await bastionExec('ip -o addr show dev eth0')).stdout.includes(` ${FOREIGN_VIP}/`), 'the foreign router keeps its own VIP');
    const t0 = Date.now();
    const again = await runCli(deployArgs(inv, '--output', 'json'));
    assert.equal(again.code, 0, describeRun(again));
    // Our keepalived runs VRID 52 everywhere now: no master listens again (a listen alone takes 3.2 s).
    assert.ok(Date.now() - t0 < 3000, `the no-op rerun took ${Date.now() - t0} ms`);
  });

  it('a machine that is not a master owns the VIP: exit 1 naming its MAC; nothing changed', async () => {
    await bastionExec('systemctl stop keepalived 2>/dev/null; :');
    for (const h of names) await stopUnit(h, 'keepalived');
    const mac = (await bastionExec(`ip addr add ${lab.vip}/24 dev eth0 && cat /sys/class/net/eth0/address`)).stdout.trim();
    assert.match(mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
    try {
      const before = await snapshot();
      const r = await runCli(deployArgs(labInventory(['virtual_router_id=52'])));
      console.log(`[preflight] foreign VIP owner: exit ${r.code}`);
      assert.equal(r.code, 1, describeRun(r));
      assert.match(r.stdout + r.stderr, new RegExp(`MAC ${mac} answers for it`));
      assert.match(r.stdout + r.stderr, /no host was changed/);
      assert.deepEqual(await snapshot(), before);
      assert.deepEqual(await keepalivedStates(), ['inactive', 'inactive', 'inactive']);
    } finally {
      await bastionExec(`ip addr del ${lab.vip}/24 dev eth0`);
    }
  });

  it("keepalived's interface has no address in the VIP's subnet (vip_interface=lo): exit 1 naming it on every master; nothing changed", async () => {
    for (const h of names) await stopUnit(h, 'keepalived');
    const before = await snapshot();
    const r = await runCli(deployArgs(labInventory(['virtual_router_id=52', 'vip_interface=lo'])));
    console.log(`[preflight] interface outside the VIP's subnet: exit ${r.code}`);
    assert.equal(r.code, 1, describeRun(r));
    for (const h of names) assert.match(r.stdout + r.stderr, new RegExp(`interface lo has no address in the VIP's subnet \\(127\\.0\\.0\\.1/8[^)]*\\) on ${h}`));
    assert.match(r.stdout + r.stderr, /no host was changed/);
    assert.deepEqual(await snapshot(), before);
    assert.deepEqual(await keepalivedStates(), ['inactive', 'inactive', 'inactive']);
  });
});
