// `npm run bench`: first rollout on fresh lab hosts and a no-op rerun, timed around the real bin
// (compiled dist/, as operators run it). Targets: no-op ≤ 3 remote commands per host and < 1 s.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { lab, labUp, resetHosts } from '../test/helpers/lab.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

function deploy(): { ms: number; json: { ok: boolean; hosts: { host: string; changed: number; commands: number }[] } } {
  const t0 = process.hrtime.bigint();
  const r = spawnSync(process.execPath, ['bin/kha-deploy.js', '-i', lab.inventoryPath, '--known-hosts', lab.knownHostsPath, '--output', 'json'], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.status !== 0) throw new Error(`kha-deploy exited ${r.status}\n${r.stdout}\n${r.stderr}`);
  return { ms, json: JSON.parse(r.stdout) };
}

const build = spawnSync('npm', ['run', '-s', 'build'], { cwd: ROOT, stdio: 'inherit' });
if (build.status !== 0) process.exit(1);
await labUp();
await resetHosts();
const first = deploy();
const reruns = [deploy(), deploy(), deploy()];
const noop = reruns.sort((a, b) => a.ms - b.ms)[1]!;

const row = (label: string, r: ReturnType<typeof deploy>) =>
  `${label.padEnd(22)} ${(r.ms / 1000).toFixed(2).padStart(7)} s   commands/host: ${r.json.hosts.map((h) => `${h.host}=${h.commands}`).join(' ')}`;
console.log('\nkha-deploy on the 3-master lab');
console.log(row('first rollout (fresh)', first));
console.log(row('no-op rerun (median/3)', noop));
const maxCmds = Math.max(...noop.json.hosts.map((h) => h.commands));
const changed = noop.json.hosts.reduce((n, h) => n + h.changed, 0);
console.log(`targets: no-op ≤ 3 commands/host (${maxCmds}) ${maxCmds <= 3 ? 'MET' : 'MISSED'}; no-op < 1 s (${(noop.ms / 1000).toFixed(2)} s) ${noop.ms < 1000 ? 'MET' : 'MISSED'}; changed on rerun = ${changed}`);
