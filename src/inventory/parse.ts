// Ansible INI inventory → raw groups, hosts and variables with their line numbers; no meaning yet.
// Own tokenizer, not the `ini` package: `ini` splits a line at its first '=' (so a host line
// `m1 ansible_host=1.2.3.4 priority=150` becomes one key), cuts values at ';'/'#', turns true/false
// into booleans, lets repeated keys overwrite and nests [a.b] — none of which is Ansible's format.
import type { InventoryProblem } from '../errors.js';
import { expandHostPattern } from './ranges.js';
import { decodeIniValue } from './values.js';

/** One `key=value` with its 1-based line: the text kha-deploy checks, and the value Ansible sees. */
export interface RawVar {
  key: string;
  /** Quotes removed, otherwise as written (YAML: the scalar as text). */
  value: string;
  line: number;
  /** What Ansible makes of it (literal_eval for INI, the YAML value); undefined = same as value. */
  typed?: unknown;
}

/** One host line: `name key=value …`. */
export interface RawHost {
  name: string;
  line: number;
  vars: RawVar[];
}

export interface RawGroup {
  name: string;
  /** Line of the first section header naming this group ([g], [g:vars] or [g:children]). */
  line: number;
  /** Line of the first [g:vars] header, when there is one. */
  varsLine?: number;
  hosts: RawHost[];
  vars: RawVar[];
  children: { name: string; line: number }[];
}

export interface RawInventory {
  file: string;
  /** Groups by name, in order of first appearance; hosts before any header are in `ungrouped`. */
  groups: Map<string, RawGroup>;
  /** Syntax problems; validateInventory reports them with everything else it finds. */
  problems: InventoryProblem[];
}

type Words = string[] | { error: string };

/**
 * Split a line into words like Python's shlex.split(line, comments=True), which Ansible uses for
 * host lines: '…' literal, "…" with \" and \\ escapes, \ escapes outside quotes. One difference:
 * '#' starts a comment only at the start of a word, so `eth0#x` stays one word and is refused by
 * the value checks instead of being silently cut.
 */
export function splitWords(text: string): Words {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(cur);
      [cur, inWord] = ['', false];
      i++;
    } else if (c === '#' && !inWord) {
      break;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) return { error: 'unterminated single quote' };
      [cur, inWord, i] = [cur + text.slice(i + 1, end), true, end + 1];
    } else if (c === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= text.length) return { error: 'unterminated double quote' };
        const d = text[i]!;
        if (d === '"') break;
        if (d === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) i++;
        cur += text[i];
        i++;
      }
      i++;
    } else if (c === '\\') {
      if (i + 1 >= text.length) return { error: 'line ends with a backslash' };
      [cur, inWord, i] = [cur + text[i + 1], true, i + 2];
    } else {
      [cur, inWord] = [cur + c, true];
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** key=value with Ansible's reading of the value (a `# comment` after an unquoted value stays part of it, as in Ansible). */
function rawVar(key: string, written: string, line: number): RawVar {
  const d = decodeIniValue(written);
  return d.typed === d.text ? { key, value: d.text, line } : { key, value: d.text, line, typed: d.typed };
}

/** The leading name of a line that could not be parsed, for the problem's `variable` (never its value). */
function leadingName(text: string): { variable?: string } {
  const m = /^[A-Za-z0-9_.:-]+/.exec(text);
  return m ? { variable: m[0] } : {};
}

const HEADER = /^\[([^:\]\s]+)(?::([^\]\s]*))?\]\s*(?:[#;].*)?$/;

export function parseInventoryText(text: string, file: string): RawInventory {
  const groups = new Map<string, RawGroup>();
  const problems: InventoryProblem[] = [];
  const group = (name: string, line: number): RawGroup => {
    let g = groups.get(name);
    if (!g) groups.set(name, (g = { name, line, hosts: [], vars: [], children: [] }));
    return g;
  };
  // Current section: which group and what kind; null after a malformed header (its lines are skipped).
  let section: { group: RawGroup; kind: 'hosts' | 'vars' | 'children' } | null = null;
  let implicit = true;
  // As Ansible: a group is defined by [g] or [g:children]; [g:vars] or a child reference alone is an error.
  const defined = new Set(['all', 'ungrouped']);
  const varsOnly: { name: string; line: number }[] = [];
  const childRefs: { parent: string; name: string; line: number }[] = [];

  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\n|\r/);
  lines.forEach((rawLine, idx) => {
    const line = idx + 1;
    const trimmed = rawLine.trim();
    if (trimmed === '' || trimmed.startsWith('#') || trimmed.startsWith(';')) return;

    // As Ansible: a line is a header when it looks like one; `[2001:db8::1]:22` is a host.
    if (trimmed.startsWith('[') && !/^\[[^\]]*\]:[0-9]+(\s|$)/.test(trimmed)) {
      implicit = false;
      const m = HEADER.exec(trimmed);
      const kind = m?.[2] ?? 'hosts';
      if (!m || (m[2] !== undefined && kind !== 'vars' && kind !== 'children')) {
        problems.push({
          line,
          message: m
            ? `unknown section kind ":${kind}": only [group], [group:vars] and [group:children] exist`
            : 'malformed section header: expected [group], [group:vars] or [group:children]',
        });
        section = null;
        return;
      }
      const g = group(m[1]!, line);
      if (kind === 'vars') g.varsLine ??= line;
      if (kind === 'vars') varsOnly.push({ name: g.name, line });
      else defined.add(g.name);
      section = { group: g, kind: kind as 'hosts' | 'vars' | 'children' };
      return;
    }

    if (implicit) section = { group: group('ungrouped', line), kind: 'hosts' };
    if (!section) return;

    if (section.kind === 'vars') {
      const eq = trimmed.indexOf('=');
      const key = eq < 0 ? '' : trimmed.slice(0, eq).trim();
      if (!key) {
        problems.push({ line, ...leadingName(trimmed), message: `expected key=value in [${section.group.name}:vars]` });
        return;
      }
      section.group.vars.push(rawVar(key, trimmed.slice(eq + 1), line));
      return;
    }

    const words = splitWords(trimmed);
    if (!Array.isArray(words)) {
      problems.push({ line, ...leadingName(trimmed), message: `cannot split this line into words: ${words.error}` });
      return;
    }
    if (words.length === 0) return;

    if (section.kind === 'children') {
      if (words.length !== 1) problems.push({ line, ...leadingName(trimmed), message: `expected one group name per line in [${section.group.name}:children]` });
      else {
        section.group.children.push({ name: words[0]!, line });
        childRefs.push({ parent: section.group.name, name: words[0]!, line });
      }
      return;
    }

    const [name, ...rest] = words as [string, ...string[]];
    if (name.includes('=')) {
      problems.push({
        line,
        variable: name.slice(0, name.indexOf('=')),
        message: `a variable in the host list of [${section.group.name}]: lines here must start with a host name`,
        hint: `put group variables under [${section.group.name}:vars] or [all:vars]`,
      });
      return;
    }
    const vars: RawVar[] = [];
    for (const w of rest) {
      const eq = w.indexOf('=');
      if (eq <= 0) {
        problems.push({ line, variable: name, message: `expected key=value after host ${name}, found a word without '='` });
        continue;
      }
      vars.push(rawVar(w.slice(0, eq), w.slice(eq + 1), line));
    }
    const expanded = expandHostPattern(name);
    if ('error' in expanded) {
      problems.push({ line, variable: name, message: expanded.error });
      return;
    }
    // name:port is Ansible's shorthand for ansible_port on that host line.
    const portVar = expanded.port === undefined ? [] : [{ key: 'ansible_port', value: String(expanded.port), line, typed: expanded.port }];
    for (const n of expanded.names) section.group.hosts.push({ name: n, line, vars: [...portVar, ...vars] });
  });
  for (const v of varsOnly)
    if (!defined.has(v.name))
      problems.push({ line: v.line, variable: v.name, message: `[${v.name}:vars] names group ${v.name}, which is not defined in this file`, hint: `add a [${v.name}] section (Ansible refuses vars for an undefined group)` });
  for (const c of childRefs)
    if (!defined.has(c.name))
      problems.push({ line: c.line, variable: c.name, message: `[${c.parent}:children] names group ${c.name}, which is not defined in this file`, hint: `add a [${c.name}] section, or remove the line` });
  return { file, groups, problems };
}
