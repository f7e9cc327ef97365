// Secrets (vrrp_auth_pass, passphrases, sudo passwords) are masked wherever text leaves the process.

export const MASK = '********';

/** Replace every occurrence of each non-empty secret by a mask. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  let out = text;
  for (const s of secrets) {
    if (s) out = out.split(s).join(MASK);
  }
  return out;
}
