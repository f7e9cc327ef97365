// Ansible itself as the reference: `ansible-inventory -i PATH --list` (Debian's ansible-core 2.14) on
// every inventory shape kha-deploy reads, compared with what kha-deploy's loader builds: the groups
// (direct hosts, children) and every host's variables after precedence (all of them, not only ours).
// In CI (CI=true) a missing ansible-inventory fails this test; elsewhere it is skipped, loudly.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readSources } from '../../src/inventory/load.js';
import { buildModel, hostLayers, resolve } from '../../src/inventory/model.js';
import type { InventoryInput } from '../../src/inventory/validate.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const SHAPES = [
  'test/fixtures/inventories/ini-shapes/hosts',
  'test/fixtures/inventories/yaml-listed/hosts.yml',
  'test/fixtures/inventories/yaml-handwritten.yml',
  'test/fixtures/inventories/dir',
  'inventories/example.ini',
  'inventories/kubeasz-2018/hosts',
  'inventories/kubeasz-3/hosts',
  'inventories/kubespray/inventory.ini',
  'inventories/yaml/hosts.yml',
];

const have = spawnSync('ansible-inventory', ['--version'], { encoding: 'utf8' }).status === 0;
const inCI = process.env.CI === 'true';
if (!have && !inCI)
  process.stderr.write('\n*** ansible-inventory NOT FOUND: THE ANSIBLE COMPARISON TESTS ARE SKIPPED (apt-get install ansible-core) ***\n\n');

interface View {
  groups: Record<string, { hosts: string[]; children: string[] }>;
  hostvars: Record<string, Record<string, unknown>>;
}

// No ansible.cfg of this machine may take part: a home and a working directory of their own.
const home = mkdtempSync(join(tmpdir(), 'kha-oracle-'));
after(() => rmSync(home, { recursive: true, force: true }));

function ansible(path: string): Promise<View> {
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', ANSIBLE_INVENTORY_UNPARSED_FAILED: 'true', ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED: 'true' };
  return new Promise((res, rej) =>
    execFile('ansible-inventory', ['-i', join(root, path), '--list'], { env, cwd: home, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) return rej(new Error(`ansible-inventory -i ${path} failed: ${stderr}`));
      const data = JSON.parse(stdout) as Record<string, { hosts?: string[]; children?: string[]; hostvars?: View['hostvars'] }>;
      const groups: View['groups'] = {};
      for (const [name, g] of Object.entries(data)) {
        if (name === '_meta' || name === 'all') continue;
        if (g.hosts?.length || g.children?.length) groups[name] = { hosts: g.hosts ?? [], children: [...(g.children ?? [])].sort() };
      }
      const hostvars: View['hostvars'] = {};
      for (const h of Object.values(groups).flatMap((g) => g.hosts)) hostvars[h] = data._meta?.hostvars?.[h] ?? {};
      res({ groups, hostvars });
    }),
  );
}

function ours(input: InventoryInput): View {
  const m = buildModel(input.inventories);
  const files = input.varsFiles ?? { group: new Map(), host: new Map() };
  const groups: View['groups'] = {};
  // Hosts listed only under `all` (YAML) are Ansible's `ungrouped`.
  const ungrouped = [...m.hosts.values()].filter((h) => h.groups.every((g) => g === 'all' || g === 'ungrouped')).map((h) => h.name);
  for (const g of m.groups.values()) {
    if (g.name === 'all') continue;
    const hosts = g.name === 'ungrouped' ? ungrouped : g.hosts;
    if (hosts.length || g.children.length) groups[g.name] = { hosts, children: [...g.children].sort() };
  }
  if (ungrouped.length && !groups.ungrouped) groups.ungrouped = { hosts: ungrouped, children: [] };
  const hostvars: View['hostvars'] = {};
  for (const h of m.hosts.keys()) {
    const vars = resolve(hostLayers(m, h, files));
    hostvars[h] = Object.fromEntries([...vars].map(([k, v]) => [k, v.typed !== undefined ? v.typed : v.value]));
  }
  return { groups, hostvars };
}

describe('every inventory shape reads as ansible-inventory --list reads it', { skip: !have && !inCI ? 'ansible-inventory not installed (not in CI)' : false }, () => {
  it('ansible-inventory is installed (required in CI)', () => assert.ok(have, 'ansible-inventory not found: CI installs ansible-core (lab/lib.sh LAB_PACKAGES)'));

  for (const path of SHAPES) {
    it(path, async () => {
      const [theirs, input] = await Promise.all([ansible(path), readSources(join(root, path), { env: {}, cwd: home, home })]);
      assert.deepEqual(input.problems ?? [], []);
      for (const inv of input.inventories) assert.deepEqual(inv.problems, [], inv.file);
      const mine = ours(input);
      assert.deepEqual(mine.groups, theirs.groups, 'groups: direct hosts and children');
      assert.deepEqual(mine.hostvars, theirs.hostvars, 'every host variable after precedence');
    });
  }
});
