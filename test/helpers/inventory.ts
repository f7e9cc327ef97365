// Variants of the lab inventory for e2e tests: same hosts and key, other variables.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lab } from './lab.js';

const dir = mkdtempSync(join(tmpdir(), 'kha-e2e-inv-'));
let n = 0;

/** Lab inventory with `vars` (key=value lines) added to [masters:vars]; optional text replacements. */
export function labInventory(vars: string[] = [], opts: { base?: string; replace?: [RegExp, string][] } = {}): string {
  let text = readFileSync(opts.base ?? lab.inventoryPath, 'utf8');
  text = text.replace(/^\[masters:vars\]$/m, ['[masters:vars]', ...vars].join('\n'));
  for (const [re, to] of opts.replace ?? []) text = text.replace(re, to);
  const p = join(dir, `inventory-${++n}.ini`);
  writeFileSync(p, text);
  return p;
}

export const deployArgs = (inventory: string, ...extra: string[]) => ['-i', inventory, '--known-hosts', lab.knownHostsPath, ...extra];
