// Thin I/O for `kha-deploy check` / `deploy --check`: load, connect, gather, print the report.
import { loadInventory } from '../inventory/load.js';
import { loadPlaybook } from '../playbook.js';
import { textUi } from '../report/text-ui.js';
import type { ClusterSpec, HostSpec } from '../types.js';
import { checkReport, checkText, gatherCheck } from './check.js';
import { connector, fail, readCredentials, selectHosts, withInterrupt, type CommonArgs } from './common.js';

export async function runCheckCommand(args: CommonArgs): Promise<number> {
  const json = args.output === 'json';
  const out = (s: string) => process.stdout.write(`${s}\n`);
  let spec: ClusterSpec;
  let hosts: HostSpec[];
  let creds;
  try {
    spec = await loadInventory(args.inventory);
    hosts = selectHosts(spec.hosts, args.limit);
    creds = await readCredentials(args, hosts);
  } catch (err) {
    return fail(err, json);
  }
  const lines = textUi(out, args.verbose);
  const emit = json ? () => undefined : (e: Parameters<typeof lines>[0]) => (e.type === 'command' ? lines(e) : undefined);
  const abort = new AbortController();
  try {
    const inputs = await withInterrupt(abort, () =>
      gatherCheck({ spec, playbook: loadPlaybook(), hosts, emit, signal: abort.signal, connect: connector(args, creds, (host, command) => emit({ type: 'command', host, command })) }),
    );
    const report = checkReport(spec, inputs);
    out(json ? JSON.stringify(report, null, 2) : checkText(report));
    return report.exitCode;
  } catch (err) {
    return fail(err, json);
  }
}
