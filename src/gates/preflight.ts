// Preflight, before the first change: haproxy's readiness checks ask each apiserver's /readyz without
// credentials, so an apiserver that refuses anonymous requests (401/403) would be marked DOWN on every
// master at once. Checked from each master against its own apiserver, with whatever client the host
// has (curl, else openssl), in the same command as the facts: before any package or file changes.
import { HostStepError, ManyErrors } from '../errors.js';
import { scriptTag, shellQuote } from '../shell.js';
import type { ClusterSpec, HostSpec, RunEvent } from '../types.js';

const MARK = '@@KHA-READYZ';

/** POSIX sh that prints `@@KHA-READYZ code=NNN tool=curl|openssl|none` for https://ADDR:PORT/readyz, anonymously. */
export function readyzProbeScript(address: string, port: number): string {
  const hostPart = address.includes(':') ? `[${address}]` : address;
  const url = `https://${hostPart}:${port}/readyz`;
  const request = `GET /readyz HTTP/1.1\\r\\nHost: ${hostPart}\\r\\nConnection: close\\r\\n\\r\\n`;
  return [
    scriptTag('preflight', 'readyz', `${hostPart}:${port}`),
    'if command -v curl >/dev/null 2>&1; then',
    // -k: the check is about authorization, not the certificate (haproxy's check uses verify none too).
    `  kha_c=$(curl -sk -o /dev/null -w '%{http_code}' -m 5 ${shellQuote(url)} 2>/dev/null); echo "${MARK} code=\${kha_c:-000} tool=curl"`,
    'elif command -v openssl >/dev/null 2>&1; then',
    `  kha_l=$(printf ${shellQuote(request)} | timeout 5 openssl s_client -quiet -connect ${shellQuote(`${hostPart}:${port}`)} 2>/dev/null | head -n 1)`,
    `  kha_c=$(printf '%s\\n' "$kha_l" | awk '{print $2}'); echo "${MARK} code=\${kha_c:-000} tool=openssl"`,
    'else',
    `  echo "${MARK} code= tool=none"`,
    'fi',
  ].join('\n');
}

export interface ReadyzAnswer {
  /** HTTP status, '000' when nothing answered, '' when the host has no client to ask with. */
  code: string;
  tool: string;
}

export function parseReadyzProbe(output: string): ReadyzAnswer | undefined {
  const m = new RegExp(`^${MARK} code=(\\d*) tool=(\\S+)\\r?$`, 'm').exec(output);
  return m ? { code: m[1]!, tool: m[2]! } : undefined;
}

export type ReadyzVerdict = { kind: 'ok' } | { kind: 'refused'; message: string } | { kind: 'warn'; message: string };

/** What the answer means for readiness checks through haproxy (pure). */
export function judgeReadyz(spec: Pick<ClusterSpec, 'apiserverPort'>, host: HostSpec, answer: ReadyzAnswer | undefined): ReadyzVerdict {
  const where = `https://${host.address}:${spec.apiserverPort}/readyz`;
  if (!answer || answer.tool === 'none') return { kind: 'warn', message: `cannot check ${where} without credentials on ${host.name} (neither curl nor openssl there); the packages step installs curl` };
  if (answer.code === '200') return { kind: 'ok' };
  if (answer.code === '401' || answer.code === '403') {
    return { kind: 'refused', message: `${where} answered ${answer.code} to a request without credentials: haproxy's readiness check would mark this apiserver DOWN` };
  }
  if (answer.code === '000') return { kind: 'warn', message: `${where} did not answer from ${host.name}: its apiserver is down or not listening there; haproxy will mark it DOWN until it answers` };
  return { kind: 'warn', message: `${where} answered ${answer.code} (not ready): haproxy will mark this apiserver DOWN until /readyz says 200` };
}

export const ANONYMOUS_HINT =
  'either allow anonymous health checks (kube-apiserver --anonymous-auth=true, the default, keeps /readyz readable through the system:public-info-viewer role), ' +
  'or set haproxy_health_check=tcp in the inventory to check the apiservers with a TCP connect only';

/** Judge every master's answer (read with the facts, so no extra command); throws on 401/403, warns on the rest. */
export function preflightReadyz(opts: {
  spec: Pick<ClusterSpec, 'apiserverPort'>;
  answers: readonly { spec: HostSpec; output: string }[];
  emit: (e: RunEvent) => void;
}): void {
  const refusals: HostStepError[] = [];
  for (const { spec: host, output } of opts.answers) {
    const verdict = judgeReadyz(opts.spec, host, parseReadyzProbe(output));
    if (verdict.kind === 'warn') opts.emit({ type: 'warning', host: host.name, message: verdict.message });
    if (verdict.kind === 'refused') {
      const line = output.split('\n').find((l) => l.startsWith(MARK)) ?? '';
      refusals.push(new HostStepError(host.name, 'preflight', verdict.message, { seen: line, hint: ANONYMOUS_HINT }));
    }
  }
  if (refusals.length > 0) {
    throw new ManyErrors(refusals, `${refusals.length} apiserver${refusals.length === 1 ? '' : 's'} refuse anonymous /readyz: no host was changed`);
  }
}
