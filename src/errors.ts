// Typed errors carry the data (host, step, what was seen, what to do); src/report/format-error.ts
// is the one place that turns them into text. Exit codes: 0 converged, 1 host step/gate failed,
// 2 usage or inventory error (raised before any host is touched), 130 interrupted.

export const EXIT_OK = 0;
export const EXIT_HOST_FAILED = 1;
export const EXIT_USAGE = 2;
export const EXIT_INTERRUPTED = 130;

export abstract class KhaError extends Error {
  abstract readonly exitCode: number;
  /** What the operator should do next, one or two sentences. */
  readonly hint?: string;
  constructor(message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    if (opts.hint !== undefined) this.hint = opts.hint;
  }
}

/** Bad command line. */
export class UsageError extends KhaError {
  readonly exitCode = EXIT_USAGE;
}

export interface InventoryProblem {
  /** 1-based line in the inventory file; undefined for whole-file problems. */
  line?: number;
  /** The variable (or host / group) the problem is about. */
  variable?: string;
  message: string;
  hint?: string;
}

/** One or more problems in the inventory file; all are reported at once. */
export class InventoryError extends KhaError {
  readonly exitCode = EXIT_USAGE;
  constructor(
    readonly file: string,
    readonly problems: InventoryProblem[],
  ) {
    super(problems.map((p) => p.message).join('; '));
  }
}

/** A remote step failed on one host. `seen` holds what the host showed (stderr, journal lines). */
export class HostStepError extends KhaError {
  readonly exitCode: number = EXIT_HOST_FAILED;
  constructor(
    readonly host: string,
    readonly step: string,
    message: string,
    opts: { seen?: string; hint?: string; cause?: unknown } = {},
  ) {
    super(message, opts);
    if (opts.seen !== undefined) this.seen = opts.seen;
  }
  readonly seen?: string;
}

/** A gate (VIP placement, kubectl through the VIP) did not pass before its deadline. */
export class GateError extends HostStepError {
  /** The hosts the check failed on (the recap marks them failed). */
  readonly hosts: string[];
  /** Who held the VIP at the last observation; undefined when it could not be observed. */
  readonly holders?: string[];
  constructor(
    host: string,
    step: string,
    message: string,
    opts: { seen?: string | undefined; hint?: string; cause?: unknown; hosts?: string[]; holders?: string[] } = {},
  ) {
    const { hosts, holders, seen, ...rest } = opts;
    super(host, step, message, { ...rest, ...(seen !== undefined ? { seen } : {}) });
    this.hosts = hosts && hosts.length > 0 ? hosts : [host];
    if (holders !== undefined) this.holders = holders;
  }
}

/** A remote command ran past its deadline; it was ended on the host (its process group). */
export class DeadlineError extends HostStepError {
  constructor(
    host: string,
    step: string,
    readonly timeoutMs: number,
    /** What the command had printed (stdout and stderr) before it was ended. */
    output: string,
    opts: { what?: string; hint?: string } = {},
  ) {
    super(host, step, `${opts.what ?? 'the command'} did not finish within ${formatSeconds(timeoutMs)}; it was ended on the host`, {
      seen: output,
      hint: opts.hint ?? 'see what it printed above: it may wait on a lock, a prompt or the network; fix that on the host and rerun',
    });
  }
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Could not connect or authenticate. */
export class ConnectError extends HostStepError {}

/** The host key is unknown, changed or revoked. Always refused. */
export class HostKeyError extends HostStepError {
  constructor(
    host: string,
    readonly kind: 'unknown' | 'changed' | 'revoked',
    readonly endpoint: string,
    readonly fingerprint: string,
    readonly knownFingerprints: string[],
    opts: { hint?: string } = {},
  ) {
    super(host, 'connect', `host key ${kind} for ${endpoint}`, opts);
  }
}

/** Another kha-deploy run holds the lock on a host. */
export class LockedError extends HostStepError {}

/** Ctrl-C / SIGTERM. */
export class InterruptedError extends KhaError {
  readonly exitCode = EXIT_INTERRUPTED;
}

/** Several hosts failed at once (e.g. unreachable at start); each is reported. */
export class ManyErrors extends KhaError {
  readonly exitCode: number;
  constructor(readonly errors: KhaError[], summary: string) {
    super(summary);
    this.exitCode = Math.max(...errors.map((e) => e.exitCode));
  }
}
