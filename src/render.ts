// Renders the managed files from the playbook's templates. Deliberately tiny: config files are
// read by people on the hosts, so templates stay close to the files they produce.
//
// Template syntax (line based, nothing else):
//   {{ name }}            a value from the context (string or integer)
//   {{#name}} … {{/name}} on lines of their own: a block. When `name` is a list (its name ends in
//                          `s`), the lines repeat once per item and `{{ item.field }}` names the item
//                          by the singular (`{{#servers}}` → `{{ server.address }}`). Otherwise the
//                          lines appear once when the value is true / a non-empty string, and not at all
//                          when it is false / undefined / ''. Blocks do not nest.
// Unknown names, malformed tags and values that could break out of their token throw.
import { isIPv6 } from 'node:net';
import { CURL_PATH } from './facts.js';
import type { ClusterSpec, HostFacts, HostSpec } from './types.js';

/** What rendering needs from the playbook (declared here so that render and playbook do not import each other). */
export interface RenderSource {
  runDir: string;
  files: Record<'haproxy' | 'keepalived' | 'tmpfiles', { template: string; templateText: string }>;
}

export const MANAGED_HEADER = '# Managed by kha-deploy — changes are overwritten; edit the inventory/playbook instead.';

type Scalar = string | number;
export type TemplateItem = Record<string, Scalar>;
export type TemplateValue = Scalar | boolean | undefined | TemplateItem[];
export type TemplateContext = Record<string, TemplateValue>;

interface TextLine {
  kind: 'line';
  line: number;
  /** Alternating literal text and placeholder names: even indexes literal, odd indexes names. */
  parts: string[];
}
interface Block {
  kind: 'block';
  line: number;
  name: string;
  body: TextLine[];
}
type Node = TextLine | Block;

const NAME = /^[a-z_][a-z0-9_]*$/;
const REF = /^([a-z_][a-z0-9_]*)(?:\.([a-z_][a-z0-9_]*))?$/;
const BLOCK_TAG = /^\s*\{\{\s*([#/])\s*([^\s}]*)\s*\}\}\s*$/;
// What may never reach a config token: whitespace, control characters, braces and quotes (both
// parsers), '#' and '!' (keepalived comments), '\' and '$' (haproxy escapes and env expansion).
const UNSAFE = /[\s\x00-\x1f\x7f{}"'#!\\$]/;

function fail(source: string, line: number, message: string): never {
  throw new Error(`template ${source} line ${line}: ${message}`);
}

function parseLine(text: string, line: number, source: string): TextLine {
  const parts: string[] = [];
  let rest = text;
  for (;;) {
    const open = rest.indexOf('{{');
    const close = rest.indexOf('}}');
    if (open < 0) {
      if (close >= 0) fail(source, line, `'}}' without '{{'`);
      parts.push(rest);
      return { kind: 'line', line, parts };
    }
    if (close >= 0 && close < open) fail(source, line, `'}}' without '{{'`);
    const end = rest.indexOf('}}', open + 2);
    if (end < 0) fail(source, line, `'{{' without '}}'`);
    const ref = rest.slice(open + 2, end).trim();
    if (/^[#/]/.test(ref)) fail(source, line, `block tag {{${ref}}} must stand on a line of its own`);
    if (!REF.test(ref)) fail(source, line, `malformed placeholder {{${rest.slice(open + 2, end)}}}`);
    parts.push(rest.slice(0, open), ref);
    rest = rest.slice(end + 2);
  }
}

/** Parse a template into lines and blocks; throws on malformed syntax. */
export function parseTemplate(text: string, source: string): Node[] {
  if (text.includes('\r')) fail(source, 1, 'CR characters (CRLF line ends?) are not allowed');
  const lines = (text.endsWith('\n') ? text.slice(0, -1) : text).split('\n');
  const nodes: Node[] = [];
  let open: Block | undefined;
  lines.forEach((raw, i) => {
    const n = i + 1;
    const tag = BLOCK_TAG.exec(raw);
    if (tag) {
      const [, kind, name] = tag as unknown as [string, string, string];
      if (!NAME.test(name)) fail(source, n, `malformed block name '${name}'`);
      if (kind === '#') {
        if (open) fail(source, n, `blocks do not nest ({{#${name}}} inside {{#${open.name}}} of line ${open.line})`);
        open = { kind: 'block', line: n, name, body: [] };
        nodes.push(open);
      } else {
        if (!open) fail(source, n, `{{/${name}}} closes no block`);
        if (open.name !== name) fail(source, n, `{{/${name}}} closes {{#${open.name}}} of line ${open.line}`);
        open = undefined;
      }
      return;
    }
    const line = parseLine(raw, n, source);
    if (open) open.body.push(line);
    else nodes.push(line);
  });
  if (open) fail(source, open.line, `{{#${open.name}}} is never closed`);
  return nodes;
}

function scalarText(source: string, line: number, ref: string, value: unknown): string {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) fail(source, line, `{{ ${ref} }} is not an integer`);
    return String(value);
  }
  if (typeof value !== 'string') fail(source, line, `{{ ${ref} }} has no text value (${value === undefined ? 'undefined' : typeof value})`);
  // The value itself is never shown: it may be a secret.
  if (value === '') fail(source, line, `{{ ${ref} }} is empty`);
  if (UNSAFE.test(value)) fail(source, line, `{{ ${ref} }} contains whitespace, a quote, a brace or a comment character`);
  return value;
}

function renderLine(l: TextLine, ctx: TemplateContext, item: { name: string; value: TemplateItem } | undefined, source: string): string {
  return l.parts
    .map((p, i) => {
      if (i % 2 === 0) return p;
      const [, head, field] = REF.exec(p) as unknown as [string, string, string | undefined];
      if (field !== undefined) {
        if (!item || item.name !== head) fail(source, l.line, `unknown placeholder {{ ${p} }} (${head} is not the item of an enclosing list block)`);
        if (!Object.hasOwn(item.value, field)) fail(source, l.line, `unknown placeholder {{ ${p} }}`);
        return scalarText(source, l.line, p, item.value[field]);
      }
      if (!Object.hasOwn(ctx, head)) fail(source, l.line, `unknown placeholder {{ ${p} }}`);
      return scalarText(source, l.line, p, ctx[head]);
    })
    .join('');
}

function itemName(block: Block, source: string): string {
  if (!block.name.endsWith('s') || block.name.length < 2) fail(source, block.line, `list block {{#${block.name}}} needs a plural name ending in 's'`);
  return block.name.slice(0, -1);
}

/** Render a parsed template; the output always ends with exactly one newline and starts with MANAGED_HEADER. */
export function renderTemplate(text: string, ctx: TemplateContext, source: string): string {
  const out: string[] = [MANAGED_HEADER];
  for (const node of parseTemplate(text, source)) {
    if (node.kind === 'line') {
      out.push(renderLine(node, ctx, undefined, source));
      continue;
    }
    if (!Object.hasOwn(ctx, node.name)) fail(source, node.line, `unknown block {{#${node.name}}}`);
    const value = ctx[node.name];
    if (Array.isArray(value)) {
      const name = itemName(node, source);
      for (const v of value) for (const l of node.body) out.push(renderLine(l, ctx, { name, value: v }, source));
    } else if (value === true || (typeof value === 'string' && value !== '') || typeof value === 'number') {
      for (const l of node.body) out.push(renderLine(l, ctx, undefined, source));
    }
  }
  return out.join('\n').replace(/\n*$/, '\n');
}

/**
 * Check every name a template uses against a sample context, including lines inside blocks that a
 * given context would skip. Run when the playbook loads, so a typo fails before any host is touched.
 */
export function checkTemplate(text: string, sample: TemplateContext, source: string): void {
  for (const node of parseTemplate(text, source)) {
    if (node.kind === 'line') {
      checkLine(node, sample, undefined, source);
      continue;
    }
    if (!Object.hasOwn(sample, node.name)) fail(source, node.line, `unknown block {{#${node.name}}}`);
    const value = sample[node.name];
    const item = Array.isArray(value) ? { name: itemName(node, source), fields: Object.keys(value[0] ?? {}) } : undefined;
    for (const l of node.body) checkLine(l, sample, item, source);
  }
}

function checkLine(l: TextLine, sample: TemplateContext, item: { name: string; fields: string[] } | undefined, source: string): void {
  l.parts.forEach((p, i) => {
    if (i % 2 === 0) return;
    const [, head, field] = REF.exec(p) as unknown as [string, string, string | undefined];
    const known = field === undefined ? Object.hasOwn(sample, head) && !Array.isArray(sample[head]) : item?.name === head && item.fields.includes(field);
    if (!known) fail(source, l.line, `unknown placeholder {{ ${p} }}`);
  });
}

/** haproxy writes an IPv6 server address as [addr]:port. */
function hostPort(address: string): string {
  return isIPv6(address) ? `[${address}]` : address;
}

/** What rendering reads from one host's facts (HostFacts has them all). */
export type RenderFacts = Pick<HostFacts, 'keepalivedVersion' | 'haproxyVersion' | 'haproxyPromex' | 'procEvents'> &
  Partial<Pick<HostFacts, 'keepalivedServingCheck' | 'units'>>;

/**
 * Facts before the packages are installed (or not readable): render for current versions (the runner
 * reads the facts again after installing, so the final plan sees the real ones), without the
 * Prometheus exporter (an unknown haproxy may lack it, and a config using it would not load).
 */
export const UNKNOWN_RENDER_FACTS: RenderFacts = { keepalivedVersion: null, haproxyVersion: null, haproxyPromex: null, procEvents: null };

/** Compares dotted versions numerically ("2.0.11" < "2.2.7"); a missing part counts as 0. */
export function versionAtLeast(version: string, min: string): boolean {
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/**
 * keepalived watches haproxy with vrrp_track_process: keepalived >= 2.0.11 (unknown counts as new),
 * and the kernel reports process events to it (not in a container with its own PID namespace: there
 * keepalived would never see haproxy come or go after its start, and the polling script is used).
 */
export function tracksProcess(facts: RenderFacts): boolean {
  return (facts.keepalivedVersion === null || versionAtLeast(facts.keepalivedVersion, '2.0.11')) && facts.procEvents !== false;
}

/**
 * keepalived < 2.2.5 starts a vrrp_script that a reload adds as failed (fixed upstream in PR #2037): on the
 * VIP holder that drops the VIP until the script first passes. So while such a keepalived runs a config
 * without the serving check, the check is not added by reload: it comes with the next start.
 */
export function servingCheckDeferred(facts: RenderFacts): boolean {
  return (
    facts.keepalivedVersion !== null &&
    !versionAtLeast(facts.keepalivedVersion, '2.2.5') &&
    facts.units?.keepalived.active === 'active' &&
    facts.keepalivedServingCheck === false
  );
}

/** haproxy >= 1.8 (unknown counts as new) knows expose-fd listeners and hard-stop-after. */
export function haproxySeamlessReload(facts: RenderFacts): boolean {
  return facts.haproxyVersion === null || versionAtLeast(facts.haproxyVersion, '1.8');
}

/** The values haproxy.cfg.tmpl may use; identical on every master with the same haproxy build. */
export function haproxyContext(spec: ClusterSpec, playbook: Pick<RenderSource, 'runDir'>, facts: RenderFacts): TemplateContext {
  const servers = spec.hosts.map((h) => ({ name: h.name, address: hostPort(h.address) }));
  const readyz = spec.haproxyHealthCheck === 'readyz';
  const seamless = haproxySeamlessReload(facts);
  return {
    vip: spec.vip,
    vip_port: spec.vipPort,
    apiserver_port: spec.apiserverPort,
    haproxy_balance: spec.haproxyBalance,
    run_dir: playbook.runDir,
    ipv4: spec.family === 4,
    ipv6: spec.family === 6,
    readyz,
    // Blocks do not nest: one server list per check mode, the other one empty.
    readyz_servers: readyz ? servers : [],
    tcp_servers: readyz ? [] : servers,
    check_inter: spec.haproxyCheckInter,
    check_fall: spec.haproxyCheckFall,
    check_rise: spec.haproxyCheckRise,
    monitor_port: spec.haproxyMonitorPort,
    seamless_reload: seamless,
    legacy_reload: !seamless,
    promex: facts.haproxyPromex === true,
  };
}

/** The values keepalived.conf.tmpl may use; per master (priority, interface) and keepalived build. */
/** The IP literal keepalived uses for a master with vrrp_unicast: its address, or what its name resolved to. */
export function unicastAddress(host: Pick<HostSpec, 'address' | 'vrrpAddress'>): string {
  return host.vrrpAddress ?? host.address;
}

export function keepalivedContext(spec: ClusterSpec, host: HostSpec, iface: string, facts: RenderFacts): TemplateContext {
  // VRRPv3 (the only version for IPv6) has no authentication; keepalived 2.2.7 rejects the config.
  if (spec.family === 6 && spec.vrrpAuthPass) {
    throw new Error('vrrp_auth_pass cannot be used with an IPv6 VIP: VRRPv3 has no authentication');
  }
  if (!Number.isSafeInteger(spec.vrrpCheckWeight) || spec.vrrpCheckWeight > -1 || spec.vrrpCheckWeight < -253) {
    throw new Error(`the VRRP check weight ${spec.vrrpCheckWeight} is not from -253 to -1 (the inventory validation computes it)`);
  }
  const track = tracksProcess(facts);
  const serving = !servingCheckDeferred(facts);
  return {
    host_name: host.name,
    priority: host.priority,
    interface: iface,
    virtual_router_id: spec.virtualRouterId,
    advert_int: spec.advertInt,
    vip: spec.vip,
    vip_prefix: spec.family === 6 ? 128 : 32,
    vrrp_auth_pass: spec.vrrpAuthPass,
    track_process: track,
    track_unit: !track,
    serving_check: serving,
    track_scripts: [...(track ? [] : [{ name: 'chk_haproxy' }]), ...(serving ? [{ name: 'chk_haproxy_serving' }] : [])],
    any_track_script: !track || serving,
    check_weight: spec.vrrpCheckWeight,
    check_loss: -spec.vrrpCheckWeight,
    monitor_port: spec.haproxyMonitorPort,
    curl: CURL_PATH,
    unicast: spec.vrrpUnicast === true,
    unicast_src_ip: spec.vrrpUnicast === true ? unicastAddress(host) : undefined,
    unicast_peers: spec.vrrpUnicast === true ? spec.hosts.filter((h) => h.name !== host.name).map((h) => ({ address: unicastAddress(h) })) : [],
    nopreempt: !spec.vrrpPreempt,
    preempt_delay: spec.vrrpPreempt && spec.vrrpPreemptDelay > 0 ? spec.vrrpPreemptDelay : undefined,
  };
}

/**
 * A context naming every value of both templates' variants (both server lists filled), so that
 * checkTemplate can verify the lines of every block when the playbook loads.
 */
export function templateCheckContexts(spec: ClusterSpec, host: HostSpec, playbook: Pick<RenderSource, 'runDir'>): { haproxy: TemplateContext; keepalived: TemplateContext } {
  const haproxy = haproxyContext(spec, playbook, UNKNOWN_RENDER_FACTS);
  const servers = spec.hosts.map((h) => ({ name: h.name, address: hostPort(h.address) }));
  return {
    haproxy: { ...haproxy, readyz_servers: servers, tcp_servers: servers },
    keepalived: { ...keepalivedContext(spec, host, 'eth0', UNKNOWN_RENDER_FACTS), unicast_src_ip: host.address, unicast_peers: spec.hosts.map((h) => ({ address: h.address })) },
  };
}

export function tmpfilesContext(playbook: Pick<RenderSource, 'runDir'>): TemplateContext {
  return { run_dir: playbook.runDir };
}

/**
 * haproxy.cfg for one master: the same on every master whose haproxy has the same version and exporter.
 * `facts` are the host's (HostFacts); left out, they count as unknown (UNKNOWN_RENDER_FACTS).
 */
export function renderHaproxy(spec: ClusterSpec, playbook: RenderSource, facts: RenderFacts = UNKNOWN_RENDER_FACTS): string {
  const f = playbook.files.haproxy;
  return renderTemplate(f.templateText, haproxyContext(spec, playbook, facts), f.template);
}

/** keepalived.conf for one master; `facts` as for renderHaproxy. */
export function renderKeepalived(spec: ClusterSpec, host: HostSpec, iface: string, playbook: RenderSource, facts: RenderFacts = UNKNOWN_RENDER_FACTS): string {
  const f = playbook.files.keepalived;
  return renderTemplate(f.templateText, keepalivedContext(spec, host, iface, facts), f.template);
}

export function renderTmpfiles(playbook: RenderSource): string {
  const f = playbook.files.tmpfiles;
  return renderTemplate(f.templateText, tmpfilesContext(playbook), f.template);
}
