// Package installation plans per package manager. Only missing packages are installed: apt-get
// would otherwise upgrade (and restart) an installed one as a side effect.
import { stepOf, type Playbook } from './playbook.js';
import { scriptTag, shellJoin } from './shell.js';
import type { HostFacts, ManagedUnit, PackageManager, PlannedStep } from './types.js';

const POLICY_RC = '/usr/sbin/policy-rc.d';

/**
 * apt: Debian's packages start their service on install with the packaged config. A policy-rc.d
 * that answers 101 ("action forbidden") keeps every service down until we wrote our config; it is
 * created only when absent (atomically, noclobber) and removed on any exit of this script.
 */
export function aptInstallScript(packages: readonly string[]): string {
  const pkgs = shellJoin(packages);
  return [
    scriptTag('packages', 'apt', ...packages),
    'export DEBIAN_FRONTEND=noninteractive',
    // needrestart (Ubuntu, Debian) would otherwise restart unrelated services after library updates.
    'export NEEDRESTART_MODE=l',
    'kha_prc=',
    `trap 'if [ -n "$kha_prc" ]; then rm -f ${POLICY_RC}; fi' EXIT`,
    // A signal must end the script through exit, so that the EXIT trap runs.
    "trap 'exit 129' HUP",
    "trap 'exit 130' INT",
    "trap 'exit 143' TERM",
    `if (set -C; printf '#!/bin/sh\\n# kha-deploy: no service starts while packages install\\nexit 101\\n' > ${POLICY_RC}) 2>/dev/null; then kha_prc=1; chmod 0755 ${POLICY_RC}; fi`,
    // Lock timeout: wait for unattended-upgrades instead of failing on a fresh VM.
    'apt-get update -q -o DPkg::Lock::Timeout=300 && ' +
      'apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 ' +
      `-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${pkgs}`,
  ].join('\n');
}

export function dnfInstallScript(packages: readonly string[]): string {
  return `${scriptTag('packages', 'dnf', ...packages)}\ndnf install -y ${shellJoin(packages)}`;
}

export function yumInstallScript(packages: readonly string[]): string {
  return `${scriptTag('packages', 'yum', ...packages)}\nyum install -y ${shellJoin(packages)}`;
}

const SCRIPT: Record<PackageManager, { tool: string; script: (p: readonly string[]) => string }> = {
  apt: { tool: 'apt-get', script: aptInstallScript },
  dnf: { tool: 'dnf', script: dnfInstallScript },
  yum: { tool: 'yum', script: yumInstallScript },
};

/** The packages step: no op when keepalived and haproxy are both installed. Throws when there is no supported package manager. */
export function packagesStep(facts: HostFacts, playbook: Playbook): Omit<PlannedStep, 'timeoutMs'> {
  const { id, title } = stepOf(playbook, 'packages');
  const missing = (['keepalived', 'haproxy'] as ManagedUnit[]).filter((u) => !facts.installed[u]);
  if (missing.length === 0) return { id, title, ops: [], reason: '' };
  if (facts.pkgManager === null) {
    throw new Error(
      `no supported package manager (apt-get, dnf, yum) found on ${facts.host} (os: ${facts.osId || 'unknown'}); ` +
        `install ${missing.join(' and ')} by hand, then rerun`,
    );
  }
  const pkgs = missing.map((u) => playbook.packages[u]);
  const pm = SCRIPT[facts.pkgManager];
  return {
    id,
    title,
    ops: [{ op: 'run', script: pm.script(pkgs), description: `install ${pkgs.join(' and ')} with ${pm.tool}` }],
    reason: `${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} not installed`,
  };
}
