// OpenSSH client configuration (ssh_config(5)), read the way `ssh` reads it, for the options
// kha-deploy uses: Host blocks (patterns, `!` negation, wildcards), simple Match blocks, Include,
// HostName, User, Port, IdentityFile, IdentitiesOnly, ProxyJump, ProxyCommand, UserKnownHostsFile,
// GlobalKnownHostsFile, StrictHostKeyChecking. The first value obtained wins, except IdentityFile,
// which accumulates. Every value keeps the file:line it came from, for errors.
//
// Hand-written rather than the `ssh-config` npm package (5.3.0, maintained): its compute() runs
// `Match exec` commands through a shell unless told not to and runs nslookup for
// CanonicalizeHostName, its wildcard `?` matches zero or one character and host patterns match
// case-sensitively, it does not follow Include, and its parse() keeps no line numbers. Tokenizing
// is the small part; the evaluation is what has to be right, so both are here.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { matchPatternList } from './known-hosts.js';

/** One directive: lower-case keyword, its arguments (quotes removed), the raw rest of the line. */
export interface ConfigLine {
  keyword: string;
  args: string[];
  /** The text after the keyword and its separator, as written (ProxyCommand keeps it whole). */
  rest: string;
  file: string;
  line: number;
}

export interface Located<T> {
  value: T;
  /** file:line */
  where: string;
}

/** What ssh_config says for one destination, before token expansion. */
export interface HostConfig {
  hostName?: Located<string>;
  user?: Located<string>;
  port?: Located<string>;
  identityFiles: Located<string>[];
  identitiesOnly?: Located<string>;
  /** Only one of proxyJump / proxyCommand is ever set: the first one met wins, as in ssh. */
  proxyJump?: Located<string>;
  proxyCommand?: Located<string>;
  userKnownHostsFiles?: Located<string[]>;
  globalKnownHostsFiles?: Located<string[]>;
  strictHostKeyChecking?: Located<string>;
  /** Blocks skipped because their Match criteria are not evaluated, and the like. */
  warnings: string[];
}

export interface ConfigFile {
  path: string;
  /** System files (/etc/ssh/ssh_config) resolve relative Includes in /etc/ssh, user files in ~/.ssh. */
  system: boolean;
}

/** Split arguments like ssh's argv_split: whitespace separates, quotes group, `\` escapes, `#` starts a comment. */
export function splitArgs(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inToken = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\' && (text[i + 1] === quote || text[i + 1] === '\\')) cur += text[++i];
      else if (c === quote) quote = undefined;
      else cur += c;
      continue;
    }
    if (c === ' ' || c === '\t') {
      if (inToken) out.push(cur);
      cur = '';
      inToken = false;
      continue;
    }
    if (c === '#' && !inToken) break;
    inToken = true;
    if (c === '\\' && i + 1 < text.length) cur += text[++i];
    else if (c === '"' || c === "'") quote = c;
    else cur += c;
  }
  if (quote) throw new Error('unterminated quote');
  if (inToken) out.push(cur);
  return out;
}

/** Directives of one file; a malformed line is an error naming file:line (ssh refuses the file too). */
export function parseSshConfig(text: string, file: string): ConfigLine[] {
  const lines: ConfigLine[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const m = /^([A-Za-z][A-Za-z0-9]*)(?:\s*=\s*|\s+|$)(.*)$/.exec(trimmed);
    if (!m) throw new UsageError(`${file}:${i + 1}: cannot read this ssh_config line: ${trimmed}`, { hint: 'fix the line, or pass --ssh-config none to read no ssh_config' });
    const rest = m[2]!.trim();
    let args: string[];
    try {
      args = splitArgs(rest);
    } catch (err) {
      throw new UsageError(`${file}:${i + 1}: ${(err as Error).message} in: ${trimmed}`, { hint: 'fix the quoting, or pass --ssh-config none' });
    }
    lines.push({ keyword: m[1]!.toLowerCase(), args, rest, file, line: i + 1 });
  });
  return lines;
}

export interface ReadContext {
  home: string;
  localUser: string;
  /** Parsed files, shared by every host of a run (and missing files as null). */
  cache: Map<string, ConfigLine[] | null>;
}

export function readContext(home = homedir()): ReadContext {
  let localUser = process.env.USER ?? 'root';
  try {
    localUser = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return { home, localUser, cache: new Map() };
}

function readLines(path: string, ctx: ReadContext): ConfigLine[] | null {
  if (ctx.cache.has(path)) return ctx.cache.get(path)!;
  let text: string | null = null;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw new UsageError(`cannot read ssh_config ${path}: ${(err as Error).message}`, { hint: 'pass --ssh-config none to read no ssh_config' });
  }
  const lines = text === null ? null : parseSshConfig(text, path);
  ctx.cache.set(path, lines);
  return lines;
}

/** Paths an Include argument names: `~` expanded, relative to ~/.ssh or /etc/ssh, wildcards expanded and sorted (glob(3)). */
export function includePaths(arg: string, system: boolean, home: string): string[] {
  let p = arg.startsWith('~/') ? join(home, arg.slice(2)) : arg;
  if (!isAbsolute(p)) p = join(system ? '/etc/ssh' : join(home, '.ssh'), p);
  const parts = p.split('/').filter((s) => s !== '');
  let found = ['/'];
  for (const part of parts) {
    const next: string[] = [];
    for (const base of found) {
      if (!/[*?]/.test(part)) {
        next.push(join(base, part));
        continue;
      }
      let names: string[] = [];
      try {
        names = readdirSync(base);
      } catch {
        /* not a directory: nothing matches */
      }
      for (const n of names.sort()) if (!n.startsWith('.') && caseSensitive(n, part)) next.push(join(base, n));
    }
    found = next;
  }
  return found.filter((f) => {
    try {
      return statSync(f).isFile();
    } catch {
      return false;
    }
  });
}

/** A file name against a glob part (`*`, `?`), case-sensitive as file names are. */
function caseSensitive(name: string, pattern: string): boolean {
  const re = pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${re}$`, 's').test(name);
}

const MAX_DEPTH = 16;

/** Match criteria kha-deploy evaluates; any other makes the block not apply, with a warning. */
const MATCH_LISTS = new Set(['host', 'originalhost', 'user', 'localuser']);

/**
 * Evaluate `files` for destination `host` (the host name as given to ssh: ansible_host, or the
 * inventory name), as ssh does: lines before any Host/Match apply to every host, a Host block applies
 * when one of its patterns matches and no negated one does.
 */
export function evaluateSshConfig(files: readonly ConfigFile[], host: string, ctx: ReadContext, user?: string): HostConfig {
  const out: HostConfig = { identityFiles: [], warnings: [] };
  const original = host.toLowerCase();
  const warned = new Set<string>();
  const warn = (w: string) => {
    if (!warned.has(w)) out.warnings.push(w);
    warned.add(w);
  };
  const first = <K extends 'hostName' | 'user' | 'port' | 'identitiesOnly' | 'strictHostKeyChecking'>(key: K, l: ConfigLine) => {
    if (out[key] === undefined && l.args[0] !== undefined) out[key] = { value: l.args[0], where: `${l.file}:${l.line}` } as HostConfig[K];
  };

  const matchBlock = (l: ConfigLine): boolean => {
    const args = l.args;
    if (args.length === 1 && args[0]!.toLowerCase() === 'all') return true;
    let ok = true;
    for (let i = 0; i < args.length; i++) {
      let crit = args[i]!.toLowerCase();
      const negate = crit.startsWith('!');
      if (negate) crit = crit.slice(1);
      if (crit === 'all') {
        ok &&= !negate;
        continue;
      }
      if (!MATCH_LISTS.has(crit)) {
        warn(`${l.file}:${l.line}: Match ${args[i]} is not evaluated by kha-deploy (it runs no command and does not canonicalize names): the options of this block are not applied`);
        return false;
      }
      const list = args[++i];
      if (list === undefined) throw new UsageError(`${l.file}:${l.line}: Match ${crit} needs an argument`);
      const subject =
        crit === 'host' ? (out.hostName?.value.replace(/%h/g, original) ?? original).toLowerCase()
        : crit === 'originalhost' ? original
        : crit === 'user' ? (user ?? out.user?.value ?? ctx.localUser)
        : ctx.localUser;
      const hit = matchPatternList(subject, list.split(','));
      ok &&= negate ? !hit : hit;
    }
    return ok;
  };

  const walk = (file: ConfigFile, depth: number) => {
    const lines = readLines(file.path, ctx);
    if (!lines) return;
    let active = true;
    for (const l of lines) {
      switch (l.keyword) {
        case 'host':
          active = matchPatternList(original, l.args.flatMap((a) => a.split(',')).filter((a) => a !== ''));
          break;
        case 'match':
          active = matchBlock(l);
          break;
        case 'include':
          if (!active) break;
          if (depth >= MAX_DEPTH) throw new UsageError(`${l.file}:${l.line}: Include nested more than ${MAX_DEPTH} deep`);
          for (const arg of l.args) for (const p of includePaths(arg, file.system, ctx.home)) walk({ path: p, system: file.system }, depth + 1);
          break;
        default:
          if (!active) break;
          switch (l.keyword) {
            case 'hostname':
              first('hostName', l);
              break;
            case 'user':
              first('user', l);
              break;
            case 'port':
              first('port', l);
              break;
            case 'identitiesonly':
              first('identitiesOnly', l);
              break;
            case 'stricthostkeychecking':
              first('strictHostKeyChecking', l);
              break;
            case 'identityfile':
              if (l.args[0] !== undefined) out.identityFiles.push({ value: l.args[0], where: `${l.file}:${l.line}` });
              break;
            case 'proxyjump':
              if (!out.proxyJump && !out.proxyCommand && l.args[0] !== undefined) out.proxyJump = { value: l.args[0], where: `${l.file}:${l.line}` };
              break;
            case 'proxycommand':
              if (!out.proxyJump && !out.proxyCommand && l.rest !== '') out.proxyCommand = { value: l.rest, where: `${l.file}:${l.line}` };
              break;
            case 'userknownhostsfile':
              if (!out.userKnownHostsFiles && l.args.length) out.userKnownHostsFiles = { value: l.args, where: `${l.file}:${l.line}` };
              break;
            case 'globalknownhostsfile':
              if (!out.globalKnownHostsFiles && l.args.length) out.globalKnownHostsFiles = { value: l.args, where: `${l.file}:${l.line}` };
              break;
          }
      }
    }
  };
  for (const f of files) walk(f, 0);
  return out;
}

/** Values for the `%` tokens of ssh_config(5) TOKENS that kha-deploy expands. */
export interface Tokens {
  /** %h: the remote host name (after HostName). */
  host: string;
  /** %n: the host name as given. */
  original: string;
  /** %p */
  port: number;
  /** %r */
  user: string;
  /** %u */
  localUser: string;
  /** %d */
  home: string;
}

/** Expand `%` tokens (and a leading `~/` for paths); an unknown token is an error naming file:line, as ssh refuses it. */
export function expandTokens(v: Located<string>, t: Tokens, allowed: string, path = true): string {
  const map: Record<string, string> = { '%': '%', h: t.host, n: t.original, p: String(t.port), r: t.user, u: t.localUser, d: t.home };
  const out = v.value.replace(/%(.)?/g, (_m, c: string | undefined) => {
    if (c === undefined || !allowed.includes(c) || map[c] === undefined)
      throw new UsageError(`${v.where}: %${c ?? ''} in ${v.value} is not a token kha-deploy can expand here (it knows ${[...allowed].map((a) => `%${a}`).join(' ')})`, {
        hint: 'write the value out, or pass --ssh-config none',
      });
    return map[c]!;
  });
  if (!path) return out;
  if (out === '~') return t.home;
  if (out.startsWith('~/')) return join(t.home, out.slice(2));
  return isAbsolute(out) ? out : resolve(t.home, out); // ssh resolves a relative IdentityFile against the home directory
}

/** The files read by default (as ssh without -F), or the one given, or none. */
export function configFiles(option: string | undefined, home: string): ConfigFile[] {
  if (option === 'none') return [];
  if (option === undefined) return [{ path: join(home, '.ssh', 'config'), system: false }, { path: '/etc/ssh/ssh_config', system: true }];
  const path = option.startsWith('~/') ? join(home, option.slice(2)) : resolve(option);
  try {
    if (!statSync(path).isFile()) throw new Error('not a regular file');
  } catch (err) {
    throw new UsageError(`--ssh-config ${option}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`, {
      hint: 'pass an OpenSSH client config file, or none to read no ssh_config',
    });
  }
  return [{ path, system: false }];
}
