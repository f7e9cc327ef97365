// The per-host plan: facts in, steps out. Pure. A step with no ops is already converged, so a
// rerun on a converged host plans nothing and touches nothing.
import { createHash } from 'node:crypto';
import { packagesStep } from './packages.js';
import { stepOf, type Playbook, type StepId } from './playbook.js';
import { renderHaproxy, renderKeepalived, renderTmpfiles, servingCheckDeferred } from './render.js';
import { scriptTag, shellQuote } from './shell.js';
import type { ClusterSpec, HostFacts, HostPlan, HostSpec, ManagedUnit, Operation, PlannedStep } from './types.js';

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** The interface keepalived uses: the inventory's vip_interface, else the one that reaches the VIP. */
export function vipInterface(host: HostSpec, facts: HostFacts): string {
  const iface = host.vipInterface ?? facts.routeInterface;
  if (!iface) {
    throw new Error(`cannot tell which interface reaches the VIP on ${host.name}: set vip_interface for it in the inventory`);
  }
  // keepalived needs an address on its interface (the VRRP source); ip -o addr lists only those.
  if (facts.interfaces.length > 0 && !facts.interfaces.some((i) => i.name === iface)) {
    throw new Error(
      `interface ${iface} (${host.vipInterface ? 'vip_interface from the inventory' : 'route to the VIP'}) has no address on ${host.name}; ` +
        `interfaces with addresses: ${facts.interfaces.map((i) => i.name).join(', ')}`,
    );
  }
  return iface;
}

interface Rendered {
  unit: ManagedUnit;
  path: string;
  content: string;
  hash: string;
  /** The file on the host differs (or is missing): this plan writes it. */
  write: boolean;
}

type StepBody = Omit<PlannedStep, 'timeoutMs'>;

function configStep(step: { id: string; title: string }, r: Rendered, facts: HostFacts, playbook: Playbook): StepBody {
  if (!r.write) return { id: step.id, title: step.title, ops: [], reason: '' };
  const f = playbook.files[r.unit];
  const op: Operation = { op: 'write-file', path: r.path, content: r.content, mode: f.mode, unit: r.unit };
  if (f.validate) op.validate = f.validate;
  const reason = facts.files[r.path] ? `${r.path.replace(/^.*\//, '')} differs from the rendered one` : `${r.path} is missing`;
  return { id: step.id, title: step.title, ops: [op], reason };
}

// Running as far as a reload is concerned: a reload of a reloading unit is harmless.
const RUNNING = new Set(['active', 'reloading']);

function unitOps(unit: ManagedUnit, r: Rendered, facts: HostFacts, host: string): { ops: Operation[]; reasons: string[] } {
  const u = facts.units[unit];
  if (u.enabled === 'masked') {
    throw new Error(`${unit}.service is masked on ${host}: unmask it (systemctl unmask ${unit}) if kha-deploy should manage it, then rerun`);
  }
  if (!RUNNING.has(u.active)) {
    return {
      ops: [{ op: 'service', unit, action: 'enable-start', recordApplied: r.hash }],
      reasons: [`${unit} is not running (${u.active || 'not installed yet'})`],
    };
  }
  const ops: Operation[] = [];
  const reasons: string[] = [];
  // Never restart: restarting keepalived gives the VIP up; a reload keeps it and haproxy's connections.
  if (r.write) {
    ops.push({ op: 'service', unit, action: 'reload', recordApplied: r.hash });
    reasons.push(`${unit} must load the new ${r.path.replace(/^.*\//, '')}`);
  } else if (facts.applied[unit] !== r.hash) {
    ops.push({ op: 'service', unit, action: 'reload', recordApplied: r.hash });
    reasons.push(`${unit} has not loaded the current ${r.path.replace(/^.*\//, '')} (an earlier run stopped before its reload, or it was changed by hand)`);
  }
  if (u.enabled !== 'enabled') {
    ops.push({ op: 'service', unit, action: 'enable' });
    reasons.push(`${unit} is not enabled at boot (${u.enabled || 'unknown'})`);
  }
  return { ops, reasons };
}

/**
 * SELinux enforcing and firewalld running: both break the HA pair in ways the gates would only
 * report as symptoms (every backend DOWN; the VIP on every master). kha-deploy changes neither
 * policy: it names the commands for the operator to run on that master.
 */
export function securityWarnings(spec: ClusterSpec, host: HostSpec, facts: HostFacts): string[] {
  const out: string[] = [];
  if (facts.selinux === 'enforcing') {
    out.push(
      `SELinux is enforcing on ${host.name}: haproxy may then bind and connect only to the ports the policy labels for it, so its ` +
        `connections to the apiservers' :${spec.apiserverPort} can be refused (every backend DOWN) and its monitor :${spec.haproxyMonitorPort} may not bind. ` +
        `kha-deploy does not change SELinux settings; run on ${host.name}: setsebool -P haproxy_connect_any 1`,
    );
  }
  if (facts.firewalldRunning === true) {
    out.push(
      `firewalld runs on ${host.name}: it drops VRRP (IP protocol 112) unless allowed, and then every master takes the VIP (split brain); ` +
        `clients need :${spec.vipPort}/tcp. kha-deploy does not change firewall rules; run on ${host.name}: ` +
        `firewall-cmd --permanent --add-rich-rule='rule protocol value="vrrp" accept' && firewall-cmd --permanent --add-port=${spec.vipPort}/tcp && firewall-cmd --reload`,
    );
  }
  return out;
}

/** Plan one master. Throws (plain Error) when the host cannot be planned: no interface, no package manager, masked unit. */
export function planHost(spec: ClusterSpec, host: HostSpec, facts: HostFacts, playbook: Playbook): HostPlan {
  const iface = vipInterface(host, facts);
  const render = (unit: ManagedUnit, content: string): Rendered => {
    const path = playbook.files[unit].path;
    const hash = sha256Hex(content);
    return { unit, path, content, hash, write: facts.files[path] !== hash };
  };
  // The host's keepalived and haproxy versions choose between config variants (track_process or a
  // script, the Prometheus exporter, …): facts read before the packages are installed say 'unknown',
  // the runner reads them again afterwards, so the configs written match what is installed.
  const haproxy = render('haproxy', renderHaproxy(spec, playbook, facts));
  const keepalived = render('keepalived', renderKeepalived(spec, host, iface, playbook, facts));

  const build: Record<StepId, () => StepBody> = {
    packages: () => packagesStep(facts, playbook),
    rundir: () => {
      const step = stepOf(playbook, 'rundir');
      const tmpfiles = playbook.files.tmpfiles;
      const content = renderTmpfiles(playbook);
      const hash = sha256Hex(content);
      const ops: Operation[] = [];
      const reasons: string[] = [];
      const ours = facts.files[tmpfiles.path];
      // Write ours when nothing recreates the directory at boot, or keep ours current once it exists.
      if (!facts.runDirPersistent || (ours != null && ours !== hash)) {
        ops.push({ op: 'write-file', path: tmpfiles.path, content, mode: tmpfiles.mode, ...(tmpfiles.validate ? { validate: tmpfiles.validate } : {}) });
        reasons.push(facts.runDirPersistent ? `${tmpfiles.path} differs from the rendered one` : `nothing recreates ${playbook.runDir} at boot`);
      }
      if (!facts.runDirExists) {
        ops.push({ op: 'run', script: `${scriptTag('rundir', playbook.runDir)}\nmkdir -p -m 0755 ${shellQuote(playbook.runDir)}`, description: `create ${playbook.runDir}` });
        reasons.push(`${playbook.runDir} is missing (haproxy cannot create its stats socket)`);
      }
      return { id: step.id, title: step.title, ops, reason: reasons.join('; ') };
    },
    'haproxy-config': () => configStep(stepOf(playbook, 'haproxy-config'), haproxy, facts, playbook),
    'keepalived-config': () => configStep(stepOf(playbook, 'keepalived-config'), keepalived, facts, playbook),
    units: () => {
      const step = stepOf(playbook, 'units');
      // haproxy first: it must listen on the VIP port before keepalived brings the VIP here.
      const h = unitOps('haproxy', haproxy, facts, host.name);
      const k = unitOps('keepalived', keepalived, facts, host.name);
      return { id: step.id, title: step.title, ops: [...h.ops, ...k.ops], reason: [...h.reasons, ...k.reasons].join('; ') };
    },
  };
  const warnings = servingCheckDeferred(facts)
    ? [
        `keepalived ${facts.keepalivedVersion} on ${host.name} predates 2.2.5: adding the haproxy serving check by reload would drop the VIP there ` +
          `(a script added by reload starts failed), so it is left out while this keepalived runs. To add it: stop keepalived on ${host.name} ` +
          `(the VIP moves to another master) and rerun kha-deploy, which starts it with the check`,
      ]
    : [];
  warnings.push(...securityWarnings(spec, host, facts));
  return { host: host.name, steps: playbook.steps.map((s) => ({ ...build[s.id](), timeoutMs: s.timeoutSeconds * 1000 })), warnings };
}
