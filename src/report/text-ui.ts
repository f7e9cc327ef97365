// Plain line-per-event output for pipes, CI logs and non-TTY terminals.
import type { RunEvent } from '../types.js';

export function eventLine(e: RunEvent, verbose: boolean): string | undefined {
  switch (e.type) {
    case 'inventory':
      return `inventory ${e.spec.file}: ${e.spec.hosts.length} master(s), VIP ${e.spec.vip}:${e.spec.vipPort}\n${e.spec.primaryReason}`;
    case 'phase':
      return `== ${e.message}`;
    case 'host-start':
      return `-- ${e.host} (${e.role})`;
    case 'step-start':
      return undefined;
    case 'step-end':
      return `[${e.host}] ${e.title}: ${e.status}${e.detail ? ` (${e.detail})` : ''}`;
    case 'gate-wait':
      // The gate is retried until its deadline: an attempt that has not passed yet is not a failure.
      return `[${e.host}] ${e.gate}: not yet, retrying (attempt ${e.attempt}; ${e.message})`;
    case 'gate-pass':
      return `[${e.host}] ${e.gate}: passed: ${e.message}`;
    case 'command':
      // The whole command as sent (secrets masked by the session), indented under its host.
      return verbose ? `[${e.host}] $ ${e.command.replace(/\n/g, `\n[${e.host}]   `)}` : undefined;
    case 'warning':
      return `warning:${e.host ? ` [${e.host}]` : ''} ${e.message}`;
  }
}

export function textUi(write: (line: string) => void, verbose: boolean): (e: RunEvent) => void {
  return (e) => {
    const line = eventLine(e, verbose);
    if (line !== undefined) write(line);
  };
}
