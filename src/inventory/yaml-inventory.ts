// Ansible's YAML inventory (`all: {hosts, vars, children}`, what `ansible-inventory --list -y` prints)
// and the vars files beside an inventory (group_vars/, host_vars/) → the same raw shapes as the INI
// parser, with 1-based lines. The `yaml` package reads YAML 1.1 as Ansible's PyYAML does.
import { LineCounter, type Node, isMap, isScalar, parseDocument, visit } from 'yaml';
import type { InventoryProblem } from '../errors.js';
import type { RawGroup, RawInventory, RawVar } from './parse.js';
import { expandHostPattern } from './ranges.js';
import { scalarText } from './values.js';

export interface ParsedYaml {
  /** The document as plain data (undefined when it could not be read). */
  data: unknown;
  /** Line of a node (1-based). */
  lineOf: (node: Node | null | undefined) => number;
  root: Node | null;
  problems: InventoryProblem[];
}

/** YAML 1.1 like PyYAML: yes/no/on/off are booleans, but a lone y/n stays text; a repeated key keeps the last value. */
export function readYaml(text: string): ParsedYaml {
  const lc = new LineCounter();
  const doc = parseDocument(text, { version: '1.1', uniqueKeys: false, lineCounter: lc, prettyErrors: false });
  const lineOf = (node: Node | null | undefined) => (node?.range ? lc.linePos(node.range[0]).line : 1);
  const problems: InventoryProblem[] = doc.errors.map((e) => ({ line: lc.linePos(e.pos[0] ?? 0).line, message: `not valid YAML: ${e.message.split('\n')[0] ?? ''}` }));
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'boolean' && node.type === 'PLAIN' && /^[yYnN]$/.test(node.source ?? '')) node.value = node.source;
    },
  });
  if (problems.length > 0) return { data: undefined, lineOf, root: null, problems };
  return { data: doc.toJS({ maxAliasCount: 1000 }), lineOf, root: doc.contents, problems };
}

/** A mapping's entries with their key line and value node. */
function entries(node: Node | null | undefined): { key: string; keyNode: Node; value: Node | null }[] {
  if (!isMap(node)) return [];
  return node.items.map((p) => ({
    key: isScalar(p.key) ? String(p.key.value) : String(p.key),
    keyNode: p.key as Node,
    value: (p.value as Node | null) ?? null,
  }));
}

function toVar(key: string, value: Node | null, line: number): RawVar {
  const typed = value && 'toJSON' in value ? (value as Node).toJSON() : null;
  const text = scalarText(typed);
  // Containers and null keep their JSON form as text: the value checks refuse them where a scalar is needed.
  return { key, value: text ?? JSON.stringify(typed), line, typed };
}

/** A mapping of variables (a host's, a group's `vars`, a vars file). */
export function mappingVars(node: Node | null | undefined, lineOf: (n: Node | null | undefined) => number): RawVar[] {
  return entries(node).map((e) => toVar(e.key, e.value, lineOf(e.keyNode)));
}

/** Parse a YAML inventory; the problems name what Ansible would refuse or skip. */
export function parseYamlInventory(text: string, file: string): RawInventory {
  const groups = new Map<string, RawGroup>();
  const y = readYaml(text);
  const problems = [...y.problems];
  if (y.problems.length > 0) return { file, groups, problems };
  if (!isMap(y.root)) {
    problems.push({ line: y.lineOf(y.root), message: 'a YAML inventory is a mapping of group names (all: {hosts: …, vars: …, children: …})' });
    return { file, groups, problems };
  }
  const group = (name: string, line: number): RawGroup => {
    let g = groups.get(name);
    if (!g) groups.set(name, (g = { name, line, hosts: [], vars: [], children: [] }));
    return g;
  };
  const walk = (name: string, node: Node | null, line: number): void => {
    const g = group(name, line);
    if (node === null || (isScalar(node) && node.value === null)) return;
    if (!isMap(node)) {
      problems.push({ line, variable: name, message: `group ${name} is not a mapping: expected hosts:, vars: or children: under it` });
      return;
    }
    for (const e of entries(node)) {
      const at = y.lineOf(e.keyNode);
      const empty = e.value === null || (isScalar(e.value) && e.value.value === null);
      // Ansible also takes a single string for a section (hosts: web1).
      const items = isScalar(e.value) && !empty ? [{ key: String(e.value.value), keyNode: e.value as Node, value: null }] : entries(e.value);
      if (!empty && !isMap(e.value) && !isScalar(e.value)) {
        problems.push({ line: at, variable: name, message: `${e.key} of group ${name} must be a mapping` });
        continue;
      }
      if (e.key === 'vars') {
        g.varsLine ??= at;
        g.vars.push(...mappingVars(e.value, y.lineOf));
      } else if (e.key === 'children') {
        for (const c of items) {
          const cl = y.lineOf(c.keyNode);
          g.children.push({ name: c.key, line: cl });
          walk(c.key, c.value, cl);
        }
      } else if (e.key === 'hosts') {
        for (const h of items) {
          const hl = y.lineOf(h.keyNode);
          const expanded = expandHostPattern(h.key);
          if ('error' in expanded) {
            problems.push({ line: hl, variable: h.key, message: expanded.error });
            continue;
          }
          if (h.value !== null && !isMap(h.value) && !(isScalar(h.value) && h.value.value === null)) {
            problems.push({ line: hl, variable: h.key, message: `host ${h.key}: its variables must be a mapping (key: value)` });
            continue;
          }
          const portVar = expanded.port === undefined ? [] : [{ key: 'ansible_port', value: String(expanded.port), line: hl, typed: expanded.port }];
          const vars = [...portVar, ...mappingVars(h.value, y.lineOf)];
          for (const n of expanded.names) g.hosts.push({ name: n, line: hl, vars });
        }
      } else {
        // Ansible warns and skips these; a misspelt `host:` would silently lose the masters, so refuse.
        problems.push({ line: at, variable: e.key, message: `unexpected key ${e.key} in group ${name}: only hosts, vars and children are valid` });
      }
    }
  };
  for (const e of entries(y.root)) {
    if (e.key === 'plugin') {
      problems.push({ line: y.lineOf(e.keyNode), variable: 'plugin', message: 'this is an inventory plugin configuration (plugin: …), not a YAML inventory: kha-deploy reads static inventories only' });
      return { file, groups, problems };
    }
    walk(e.key, e.value, y.lineOf(e.keyNode));
  }
  return { file, groups, problems };
}
