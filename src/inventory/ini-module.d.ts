// The `ini` package ships no types; this is the one function kha-deploy calls.
declare module 'ini' {
  /** configparser-style text → sections of key/value ('true'/'false' become booleans). */
  export function parse(text: string, opts?: { bracketedArray?: boolean }): Record<string, unknown>;
}
