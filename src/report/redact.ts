// Secrets are masked by meaning, not by substring: the VRRP password is masked where the syntax
// says "this is the password" (keepalived's `auth_pass X`, the inventory's `vrrp_auth_pass=X`), so
// a password of `51` never hides the VRID 51. The sudo password and key passphrase never enter any
// text kha-deploy shows (they travel on stdin or stay in-process), so nothing looks for them.

export const MASK = '********';

const BY_MEANING: RegExp[] = [/(\bauth_pass[ \t]+)([^\s]+)/g, /(\bvrrp_auth_pass[ \t]*[=:][ \t]*)([^\s]+)/g];

/** Mask the values that are secrets by their syntax; nothing else changes. */
export function maskSecrets(text: string): string {
  let out = text;
  for (const re of BY_MEANING) out = out.replace(re, (_m, head: string) => `${head}${MASK}`);
  return out;
}
