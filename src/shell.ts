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
  const words = [kind, ...args.map(String)];
  if (words.some((w) => /[\s\0]/.test(w) || w === '')) throw new Error(`script tag words must be non-empty and without whitespace: ${JSON.stringify(words)}`);
  return `# kha-deploy ${words.join(' ')}`;
}
