// Thin I/O for `kha-deploy status`: load, connect, read, judge, print the table or ONE JSON document.
import { loadInventory } from '../inventory/load.js';
import { loadPlaybook } from '../playbook.js';
import { textUi } from '../report/text-ui.js';
import type { ClusterSpec, HostSpec, RunEvent } from '../types.js';
import { connector, fail, readCredentials, selectHosts, withInterrupt, type CommonArgs } from './common.js';
import { gatherStatus, pickPaint, statusReport, statusText } from './status.js';

export async function runStatusCommand(args: CommonArgs): Promise<number> {
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
  const emit = json ? () => undefined : (e: RunEvent) => (e.type === 'command' ? lines(e) : undefined);
  const abort = new AbortController();
  try {
    const inputs = await withInterrupt(abort, () =>
      gatherStatus({ spec, playbook: loadPlaybook(), hosts, emit, signal: abort.signal, connect: connector(args, creds, (host, command) => emit({ type: 'command', host, command })) }),
    );
    const report = statusReport(spec, inputs);
    out(json ? JSON.stringify(report, null, 2) : statusText(report, pickPaint(process.stdout.isTTY === true, process.env)));
    return report.exitCode;
  } catch (err) {
    return fail(err, json);
  }
}
