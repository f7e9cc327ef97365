// What an INI value means to Ansible: its INI plugin passes every value through Python's
// ast.literal_eval and keeps the text as written when that fails. This is the subset that matters
// for inventories (strings, integers, floats, True/False/None, a trailing # comment after a literal);
// containers ([..], {..}) stay text. Hand-written: there is no literal_eval for JavaScript.

/** Ansible's value, and the text kha-deploy checks (quotes removed; anything else as written). */
export interface Decoded {
  typed: unknown;
  text: string;
}

const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', "'": "'", '"': '"', '0': '\0', a: '\x07', b: '\b', f: '\f', v: '\v', '\n': '' };

/** One Python string literal at `i` ('…' or "…", no prefix, no triple quotes): its value and the index after it. */
function pyString(s: string, i: number): { value: string; end: number } | undefined {
  const q = s[i];
  if (q !== "'" && q !== '"') return undefined;
  if (s.startsWith(q.repeat(3), i)) return undefined;
  let out = '';
  for (let j = i + 1; j < s.length; j++) {
    const c = s[j]!;
    if (c === q) return { value: out, end: j + 1 };
    if (c === '\n') return undefined;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const n = s[j + 1];
    if (n === undefined) return undefined;
    if (n === 'x' && /^[0-9A-Fa-f]{2}$/.test(s.slice(j + 2, j + 4))) [out, j] = [out + String.fromCharCode(parseInt(s.slice(j + 2, j + 4), 16)), j + 3];
    else if (n === 'u' && /^[0-9A-Fa-f]{4}$/.test(s.slice(j + 2, j + 6))) [out, j] = [out + String.fromCharCode(parseInt(s.slice(j + 2, j + 6), 16)), j + 5];
    else if (n in ESCAPES) [out, j] = [out + ESCAPES[n], j + 1];
    else [out, j] = [out + '\\' + n, j + 1]; // unknown escapes stay, as in Python
  }
  return undefined;
}

const INT = /^[+-]?(?:0(?:_?0)*|[1-9](?:_?[0-9])*|0[xX](?:_?[0-9A-Fa-f])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+)$/;
const FLOAT = /^[+-]?(?:[0-9](?:_?[0-9])*\.(?:[0-9](?:_?[0-9])*)?|\.[0-9](?:_?[0-9])*|[0-9](?:_?[0-9])*(?=[eE]))(?:[eE][+-]?[0-9](?:_?[0-9])*)?$/;

function pyNumber(t: string): number | undefined {
  if (INT.test(t)) {
    const sign = t.startsWith('-') ? -1 : 1;
    const body = t.replace(/^[+-]/, '').replace(/_/g, '');
    const n = /^0[xob]/i.test(body) ? Number(body.toLowerCase()) : Number(body);
    return Number.isFinite(n) ? sign * n : undefined;
  }
  if (FLOAT.test(t)) return Number(t.replace(/_/g, ''));
  return undefined;
}

/** literal_eval of one INI value as Ansible's INI plugin does it (after its strip()). */
export function decodeIniValue(written: string): Decoded {
  const v = written.trim();
  // A literal may be followed by a Python comment; adjacent string literals concatenate.
  const code = (rest: string) => rest.trim() === '' || rest.trim().startsWith('#');
  if (v[0] === "'" || v[0] === '"') {
    let i = 0;
    let out = '';
    for (;;) {
      const s = pyString(v, i);
      if (!s) break;
      out += s.value;
      i = s.end;
      while (v[i] === ' ' || v[i] === '\t') i++;
      if (code(v.slice(i))) return { typed: out, text: out };
      if (v[i] !== "'" && v[i] !== '"') break;
    }
    return { typed: v, text: v };
  }
  const hash = v.search(/\s#/);
  const head = hash >= 0 ? v.slice(0, hash).trim() : v;
  if (head === 'True' || head === 'False') return { typed: head === 'True', text: head };
  if (head === 'None') return { typed: null, text: head };
  const n = pyNumber(head);
  if (n !== undefined) return { typed: n, text: head };
  return { typed: v, text: v };
}

/** The text kha-deploy checks for a YAML/JSON value: scalars as Ansible would print them, containers undefined. */
export function scalarText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'bigint') return String(value);
  return undefined;
}
