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
