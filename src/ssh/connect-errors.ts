// Turns socket and ssh2 failures into ConnectErrors that say what failed and what to check.
import { ConnectError } from '../errors.js';
import type { Ssh2Error } from 'ssh2';

export interface ConnectContext {
  host: string;
  user: string;
  address: string;
  port: number;
  /** user@address:port */
  target: string;
  /** Credentials offered, in words. */
  tried: string[];
  /** Host key algorithms we restricted the server to (known_hosts types). */
  algorithms?: string[];
  knownHostsFile: string;
}

const NETWORK_HINT = 'is sshd running on the host, does a firewall let the port through, are ansible_host and ansible_port right?';

/** TCP-level failure (before any SSH byte). */
export function networkError(ctx: ConnectContext, err: NodeJS.ErrnoException, timeoutMs?: number): ConnectError {
  const code = err.code ?? '';
  const what: Record<string, string> = {
    ECONNREFUSED: 'connection refused (nothing listens on that port)',
    ETIMEDOUT: `no answer within ${timeoutMs !== undefined ? `${Math.round(timeoutMs / 100) / 10} s` : 'the timeout'}`,
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ECONNRESET: 'connection reset by the host',
    ENOTFOUND: `cannot resolve host name ${ctx.address}`,
    EAI_AGAIN: `cannot resolve host name ${ctx.address} (DNS not answering)`,
  };
  const hint = code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'check ansible_host in the inventory (or the DNS)' : NETWORK_HINT;
  return new ConnectError(ctx.host, 'connect', `cannot connect to ${ctx.target}: ${what[code] ?? err.message}`, { hint, cause: err });
}

/** Failure after the TCP connection was up (handshake, authentication, protocol). */
export function sshError(ctx: ConnectContext, err: Ssh2Error, readyTimeoutMs: number): ConnectError {
  if (err.level === 'client-authentication') {
    return new ConnectError(ctx.host, 'connect', `authentication failed for ${ctx.target} (tried: ${ctx.tried.join(', ')})`, {
      hint: `check ansible_user, and that the public key is in ~${ctx.user}/.ssh/authorized_keys on the host`,
      cause: err,
    });
  }
  if (err.level === 'client-timeout') {
    const what = /keepalive/i.test(err.message) ? 'the host stopped answering' : `no SSH handshake within ${readyTimeoutMs / 1000} s`;
    return new ConnectError(ctx.host, 'connect', `cannot connect to ${ctx.target}: ${what}`, { hint: NETWORK_HINT, cause: err });
  }
  if (err.level === 'handshake' && /host key/i.test(err.message) && ctx.algorithms) {
    return new ConnectError(ctx.host, 'connect', `${ctx.target} offers none of the host key types known for it (${ctx.algorithms.join(', ')})`, {
      hint: `the host's keys changed type: check them on its console and update ${ctx.knownHostsFile}`,
      cause: err,
    });
  }
  if (err.level === 'client-socket') return networkError(ctx, err as NodeJS.ErrnoException);
  if (err.level === 'protocol' || err.level === 'handshake') {
    return new ConnectError(ctx.host, 'connect', `SSH handshake with ${ctx.target} failed: ${err.message}`, {
      hint: 'is that port an SSH server (ansible_port)?',
      cause: err,
    });
  }
  return new ConnectError(ctx.host, 'connect', `cannot connect to ${ctx.target}: ${err.message}`, { hint: NETWORK_HINT, cause: err });
}
