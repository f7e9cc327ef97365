// `npm run bench` (last part): `kha-deploy verify --failover` on the converged lab, through the real
// bin: the drill's own figures (VIP move and back, API gap, failed probes) for keepalived and haproxy
// stopped on the holder, and how long the whole drill took.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lab } from '../test/helpers/lab.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const t0 = Date.now();
const r = spawnSync(process.execPath, ['bin/kha-deploy.js', 'verify', '--failover', '-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath], { cwd: ROOT, encoding: 'utf8' });
console.log('\nkha-deploy verify --failover on the 3-master lab');
console.log(r.stdout.trim());
console.log(`whole drill: ${((Date.now() - t0) / 1000).toFixed(1)} s (exit ${r.status})`);
if (r.status !== 0) {
  console.error(r.stderr);
  process.exit(1);
}
