// POSIX sh quoting. Written by hand: one line of well-known logic (close quote, escaped quote,
// reopen) is clearer than a dependency, and every remote value goes through it.

/** Quote one word for POSIX sh: 'it'\''s' style; safe for any byte string without NUL. */
export function shellQuote(value: string): string {
  if (value.includes('\0')) throw new Error('NUL byte cannot be passed to a shell');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Quote each word and join with spaces. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(' ');
}

/**
 * First line of every script kha-deploy sends: `# kha-deploy KIND ARG…`. It names the operation in
 * `-v` output and on the host, and lets the in-memory host model of the unit tests dispatch on it.
 */
export function scriptTag(kind: string, ...args: (string | number)[]): string {
  // Whitespace, control characters and '%' are %-encoded so that every word stays one word on one line.
  const words = [kind, ...args.map(String)].map((w) => (w === '' ? '%' : w.replace(/[\s\x00-\x1f\x7f%]/g, (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`)));
  return `# kha-deploy ${words.join(' ')}`;
}
