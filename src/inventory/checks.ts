// Type checks for inventory values. Each accepts a narrow whitelist, so a value that could inject
// into haproxy.cfg, keepalived.conf or a shell (newline, brace, quote, #, $(, `, ;) never passes.
import { isIP } from 'node:net';

/** A refused value: what is wrong, and optionally what to write instead. */
export interface Bad {
  bad: string;
  hint?: string;
}

export function isBad(x: unknown): x is Bad {
  return typeof x === 'object' && x !== null && 'bad' in x;
}

/** A value as shown in messages: quoted, non-printable characters escaped, cut after 60 characters. */
export function show(value: string): string {
  const cut = value.length > 60 ? value.slice(0, 60) + '…' : value;
  return JSON.stringify(cut).replace(/[^\x20-\x7e…]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Decimal digits only, no sign, no leading zero (08443 could be read as octal elsewhere). */
export function parseInteger(value: string, min: number, max: number): number | Bad {
  const range = `an integer from ${min} to ${max}`;
  if (!/^(0|[1-9][0-9]*)$/.test(value)) return { bad: `must be ${range} written in decimal digits, got ${show(value)}` };
  const n = Number(value);
  if (n < min || n > max) return { bad: `must be ${range}, got ${value}` };
  return n;
}

export function parsePort(value: string): number | Bad {
  return parseInteger(value, 1, 65535);
}

/** Ansible's spellings of a boolean; others (on, y, …) refused rather than guessed. */
export function parseBool(value: string): boolean | Bad {
  const v = value.toLowerCase();
  if (['true', 'yes', '1'].includes(v)) return true;
  if (['false', 'no', '0'].includes(v)) return false;
  return { bad: `must be true or false (also yes/no/1/0), got ${show(value)}` };
}

/** Strict dotted quad: four decimal numbers 0-255 without leading zeros (010 is octal to inet_aton). */
export function isIPv4(value: string): boolean {
  const parts = value.split('.');
  return parts.length === 4 && parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p) && Number(p) <= 255);
}

/** 4 or 6 for an IP literal, 0 otherwise; IPv6 zone ids (fe80::1%eth0) are not accepted. */
export function ipFamily(value: string): 0 | 4 | 6 {
  if (isIPv4(value)) return 4;
  if (/^[0-9A-Fa-f:.]+$/.test(value) && value.includes(':') && isIP(value) === 6) return 6;
  return 0;
}

/** Canonical text of an IP address, so 2001:db8::1 and 2001:DB8:0::1 compare equal. */
export function normalizeIP(value: string): string {
  return ipFamily(value) === 6 ? new URL(`http://[${value}]/`).hostname.slice(1, -1) : value;
}

/** RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, 253 chars at most. */
export function isDnsName(value: string): boolean {
  if (value.length > 253) return false;
  return value.split('.').every((l) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(l));
}

/** An ansible_host: an IP literal or a DNS name; digits-and-dots must be a valid IPv4 address. */
export function checkAddress(value: string): { family: 0 | 4 | 6 } | Bad {
  const family = ipFamily(value);
  if (family) return { family };
  if (/^[0-9.]+$/.test(value) || value.includes(':'))
    return { bad: `${show(value)} is not a valid IP address (IPv4 as four numbers 0-255 without leading zeros, or IPv6)` };
  if (!isDnsName(value)) return { bad: `${show(value)} is neither an IP address nor a valid DNS host name (RFC 1123)` };
  return { family: 0 };
}

/** Addresses that can never be a VIP: unspecified, broadcast, multicast (loopback stays allowed: local test harnesses use it). */
export function specialAddress(ip: string): string | undefined {
  if (isIPv4(ip)) {
    const [a] = ip.split('.').map(Number) as [number];
    if (ip === '0.0.0.0') return 'the unspecified address';
    if (ip === '255.255.255.255') return 'the broadcast address';
    if (a >= 224 && a <= 239) return 'a multicast address';
    return undefined;
  }
  const n = normalizeIP(ip);
  if (n === '::') return 'the unspecified address';
  if (/^ff/i.test(n)) return 'a multicast address';
  return undefined;
}

/** Inventory host name (also the default address and what messages call the host). */
export function checkHostName(name: string): Bad | undefined {
  if (/\[.*:.*\]/.test(name))
    return {
      bad: `host ranges like ${show(name)} are not supported`,
      hint: 'list each master on its own line, e.g. master1, master2, master3',
    };
  if (/^[^:]+:[0-9]+$/.test(name))
    return { bad: `host name ${show(name)} carries a port`, hint: 'write the port as ansible_port=… on the host line' };
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name))
    return {
      bad: `host name ${show(name)} is invalid: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
    };
  if (/^[0-9.]+$/.test(name) && !isIPv4(name))
    return { bad: `host name ${show(name)} looks like an IPv4 address but is not a valid one` };
  return undefined;
}

/** Linux interface name: IFNAMSIZ leaves 15 characters; no '/', whitespace or quotes. */
export function checkInterface(value: string): Bad | undefined {
  if (/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$/.test(value)) return undefined;
  return {
    bad: `${show(value)} is not a valid interface name: 1-15 letters, digits, '_', '.', ':', '@' or '-', starting with a letter or digit`,
  };
}

/** Login user: a POSIX-style user name. */
export function checkUser(value: string): Bad | undefined {
  if (/^[A-Za-z_][A-Za-z0-9_.-]{0,31}$/.test(value)) return undefined;
  return { bad: `${show(value)} is not a valid user name` };
}

// Whitelisted path characters: none of newline, NUL, quotes, $, `, ;, |, &, <, >, braces, spaces, #.
const PATH_CHARS = /^[A-Za-z0-9._/+@%=:,~-]+$/;

/** An absolute path on the masters (kubeconfig). */
export function checkAbsolutePath(value: string): Bad | undefined {
  if (!value.startsWith('/')) return { bad: `must be an absolute path (starting with /), got ${show(value)}` };
  if (!PATH_CHARS.test(value))
    return {
      bad: `${show(value)} contains characters not allowed in a path here: use letters, digits and . _ / + @ % = : , ~ -`,
    };
  return undefined;
}

/** A local key file path: absolute, ~/…, or relative to the inventory's directory. */
export function checkLocalPath(value: string): Bad | undefined {
  if (value === '') return { bad: 'is empty' };
  if (value.startsWith('~') && !value.startsWith('~/'))
    return { bad: `${show(value)}: only ~/ (your own home directory) is expanded, not ~user/` };
  if (!PATH_CHARS.test(value))
    return {
      bad: `${show(value)} contains characters not allowed in a path here: use letters, digits and . _ / + @ % = : , ~ -`,
    };
  return undefined;
}

// keepalived.conf: whitespace ends a word, '#' and '!' start comments, braces open blocks, '$' expands.
const SECRET_CHARS = /^[\x21-\x7e]{1,8}$/;
const SECRET_FORBIDDEN = /["'`#!{}\\$]/;

/** vrrp_auth_pass: the message never contains the value. */
export function checkAuthPass(value: string): Bad | undefined {
  if (SECRET_CHARS.test(value) && !SECRET_FORBIDDEN.test(value)) return undefined;
  return {
    bad: 'is invalid (value hidden): it must be 1 to 8 printable characters without spaces, quotes, backslash, braces, #, ! or $',
    hint: 'keepalived PASS authentication uses at most 8 characters; choose a value matching these rules',
  };
}
