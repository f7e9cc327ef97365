// Thin I/O for `kha-deploy status`: the read-only frame, then the table or ONE JSON document.
import { runReadOnly, type CommonArgs } from './common.js';
import { gatherStatus, pickPaint, statusReport, statusText } from './status.js';

export function runStatusCommand(args: CommonArgs): Promise<number> {
  return runReadOnly(args, async (ctx) => statusReport(ctx.spec, await gatherStatus(ctx)), (report) => statusText(report, pickPaint(process.stdout.isTTY === true, process.env)));
}
