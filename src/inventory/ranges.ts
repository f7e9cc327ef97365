// Ansible host patterns: `name:port`, `[ipv6]:port`, and ranges `web[01:03]`, `db-[a:c]`, `n[1:10:2]`.
// Hand-written: it is Ansible's own algorithm (inventory/helpers expand_hostname_range, parse_address),
// a few lines, and no npm package reproduces its zero-padding and letter rules.

export type Expanded = { names: string[]; port?: number } | { error: string };

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Every host a range pattern stands for, in Ansible's order; the first [..] is expanded, then the rest recursively. */
export function expandRange(pattern: string): string[] | { error: string } {
  const open = pattern.indexOf('[');
  if (open < 0) return [pattern];
  const close = pattern.indexOf(']', open);
  if (close < 0) return { error: `host range in ${pattern} has no closing ]` };
  const [head, body, tail] = [pattern.slice(0, open), pattern.slice(open + 1, close), pattern.slice(close + 1)];
  const bounds = body.split(':');
  if (bounds.length !== 2 && bounds.length !== 3) return { error: `host range [${body}] must be begin:end or begin:end:step` };
  const beg = bounds[0] || '0';
  const end = bounds[1]!;
  const stepText = bounds[2] ?? '1';
  if (!end) return { error: `host range [${body}] must specify an end value` };
  if (!/^[1-9][0-9]*$/.test(stepText)) return { error: `host range [${body}]: the step must be a positive integer` };
  const step = Number(stepText);
  // A leading zero in the begin value fixes the width (01..10), as Ansible does.
  const width = beg.length > 1 && beg[0] === '0' ? beg.length : 0;
  if (width && width !== end.length) return { error: `host range [${body}] must specify equal-length begin and end formats` };
  let seq: string[];
  const [ib, ie] = [LETTERS.indexOf(beg), LETTERS.indexOf(end)];
  if (beg.length === 1 && end.length === 1 && ib >= 0 && ie >= 0) {
    if (ib > ie) return { error: `host range [${body}] must have begin <= end` };
    seq = [];
    for (let i = ib; i <= ie; i += step) seq.push(LETTERS[i]!);
  } else {
    if (!/^[0-9]+$/.test(beg) || !/^[0-9]+$/.test(end)) return { error: `host range [${body}] is neither numeric nor single letters` };
    const [b, e] = [Number(beg), Number(end)];
    if (e - b > 100_000) return { error: `host range [${body}] expands to more than 100000 hosts` };
    seq = [];
    for (let i = b; i <= e; i += step) seq.push(width ? String(i).padStart(width, '0') : String(i));
  }
  const out: string[] = [];
  for (const s of seq) {
    const more = expandRange(head + s + tail);
    if (!Array.isArray(more)) return more;
    out.push(...more);
  }
  return out;
}

/**
 * A host pattern as Ansible's INI and YAML inventories read it: an optional `:port` (IPv6 in brackets
 * when a port follows), then ranges. A bare IPv6 address is one host.
 */
export function expandHostPattern(pattern: string): Expanded {
  let host = pattern;
  let port: number | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::([0-9]+))?$/.exec(pattern);
  if (v6 && v6[1]!.split(':').length > 2) return { names: [v6[1]!], ...(v6[2] ? { port: Number(v6[2]) } : {}) };
  if ((pattern.match(/:/g) ?? []).length > 1 && !pattern.includes('[')) return { names: [pattern] }; // bare IPv6
  // The port is what follows the last ':' outside a [..] range.
  const outside = pattern.replace(/\[[^\]]*\]/g, (r) => 'x'.repeat(r.length));
  const colon = outside.lastIndexOf(':');
  if (colon >= 0) {
    const after = pattern.slice(colon + 1);
    if (!/^[0-9]+$/.test(after)) return { error: `host pattern ${pattern}: what follows ':' must be a port number` };
    host = pattern.slice(0, colon);
    port = Number(after);
    if (port < 1 || port > 65535) return { error: `host pattern ${pattern}: port ${after} is not from 1 to 65535` };
  }
  const names = expandRange(host);
  if (!Array.isArray(names)) return names;
  return { names, ...(port !== undefined ? { port } : {}) };
}
