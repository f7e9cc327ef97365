// Thin I/O for `kha-deploy check` / `deploy --check`: the read-only frame, then check's report.
import { checkReport, checkText, gatherCheck } from './check.js';
import { runReadOnly, type CommonArgs } from './common.js';

export function runCheckCommand(args: CommonArgs): Promise<number> {
  return runReadOnly(args, async (ctx) => checkReport(ctx.spec, await gatherCheck(ctx)), checkText);
}
