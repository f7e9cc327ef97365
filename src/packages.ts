// Package installation plans per package manager. Only missing packages are installed: apt-get
// would otherwise upgrade (and restart) an installed one as a side effect.
import { PACKAGE_KEYS, stepOf, type Playbook } from './playbook.js';
import { scriptTag, shellJoin } from './shell.js';
import type { HostFacts, PackageKey, PackageManager, PlannedStep } from './types.js';

const POLICY_RC = '/usr/sbin/policy-rc.d';

/** Prefix of a stdout line that HostApplier turns into a warning event (src/apply.ts). */
export const WARN_MARK = '@@KHA-WARN';

/**
 * apt: Debian's packages start their service on install with the packaged config. A policy-rc.d
 * that answers 101 ("action forbidden") keeps every service down until we wrote our config; it is
 * created only when absent (atomically, noclobber) and removed on any exit of this script.
 *
 * A failed `apt-get update` (masters often keep a dead third-party source, such as the retired
 * Kubernetes repository) does not stop the install when every package still has a candidate from
 * the other sources: the install goes on and each failed source is named in a warning line.
 */
export function aptInstallScript(packages: readonly string[]): string {
  const pkgs = shellJoin(packages);
  // Sources named by apt's `Err:N URL SUITE FILE` and `Failed to fetch URL` lines, one warning each
  // (a fetch URL is cut at /dists/ so that both name the same source).
  const warnings =
    `awk '/^Err(:[0-9]+)? / { s = $2 } / Failed to fetch / { for (i = 1; i < NF; i++) if ($i == "fetch") { s = $(i + 1); break }; sub("/dists/.*", "", s) } ` +
    `s != "" { sub("/$", "", s); if (!seen[s]++) print "${WARN_MARK} apt-get update failed for " s "; installed from the other sources"; s = "" }' "$kha_upd_log"`;
  return [
    scriptTag('packages', 'apt', ...packages),
    'export DEBIAN_FRONTEND=noninteractive',
    // needrestart (Ubuntu, Debian) would otherwise restart unrelated services after library updates.
    'export NEEDRESTART_MODE=l',
    'kha_prc=',
    'kha_upd_log=',
    `trap 'if [ -n "$kha_prc" ]; then rm -f ${POLICY_RC}; fi; [ -z "$kha_upd_log" ] || rm -f "$kha_upd_log"' EXIT`,
    // A signal must end the script through exit, so that the EXIT trap runs.
    "trap 'exit 129' HUP",
    "trap 'exit 130' INT",
    "trap 'exit 143' TERM",
    `if (set -C; printf '#!/bin/sh\\n# kha-deploy: no service starts while packages install\\nexit 101\\n' > ${POLICY_RC}) 2>/dev/null; then kha_prc=1; chmod 0755 ${POLICY_RC}; fi`,
    // An install stopped earlier (Ctrl-C, a killed apt) leaves dpkg half done; apt refuses to go on until it is finished.
    `if [ -n "$(dpkg --audit 2>/dev/null)" ]; then echo "${WARN_MARK} dpkg was interrupted earlier: ran dpkg --configure -a first"; dpkg --configure -a || exit $?; fi`,
    'kha_upd_log=$(mktemp)',
    // Lock timeout: wait for unattended-upgrades instead of failing on a fresh VM. LC_ALL=C: the
    // Err:/Candidate: words read below are translated under other locales.
    'kha_upd=0',
    'LC_ALL=C apt-get update -q -o DPkg::Lock::Timeout=300 > "$kha_upd_log" 2>&1 || kha_upd=$?',
    'if [ "$kha_upd" -ne 0 ]; then',
    '  kha_missing=',
    `  for kha_p in ${pkgs}; do`,
    // apt-cache policy knows names only: drop a =VERSION or /RELEASE pin; an unknown name prints nothing.
    '    kha_c=$(LC_ALL=C apt-cache policy -- "${kha_p%%[=/]*}" 2>/dev/null | sed -n \'s/^ *Candidate: *//p\')',
    '    case $kha_c in \'\' | \'(none)\') kha_missing="$kha_missing $kha_p" ;; esac',
    '  done',
    '  if [ -n "$kha_missing" ]; then',
    "    grep -Ev '^(Hit|Get|Ign):|^Reading |^Fetched ' \"$kha_upd_log\" >&2",
    '    echo "apt-get update failed (exit $kha_upd) and no other source offers:$kha_missing" >&2',
    '    exit "$kha_upd"',
    '  fi',
    'fi',
    'cat "$kha_upd_log"',
    'apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 ' +
      `-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ${pkgs} || exit $?`,
    `kha_warn=$(${warnings})`,
    'if [ -n "$kha_warn" ]; then printf \'%s\\n\' "$kha_warn"',
    `elif [ "$kha_upd" -ne 0 ]; then echo "${WARN_MARK} apt-get update failed (exit $kha_upd); installed from the package lists already on the host"; fi`,
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

/** "a", "a and b", "a, b and c". */
function listWords(words: readonly string[]): string {
  return words.length <= 1 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words[words.length - 1]}`;
}

/**
 * The packages step: no op when keepalived, haproxy and curl are all installed. Throws when something
 * is missing and there is no supported package manager.
 */
export function packagesStep(facts: HostFacts, playbook: Playbook): Omit<PlannedStep, 'timeoutMs'> {
  const { id, title } = stepOf(playbook, 'packages');
  const missing = PACKAGE_KEYS.filter((k) => !facts.installed[k]);
  // An interrupted install (Ctrl-C, a killed apt) can leave binaries in place but unconfigured: finish it.
  const repair = facts.pkgInterrupted && facts.pkgManager === 'apt';
  if (missing.length === 0 && !repair) return { id, title, ops: [], reason: '' };
  if (facts.pkgManager === null) {
    throw new Error(
      `no supported package manager (apt-get, dnf, yum) found on ${facts.host} (os: ${facts.osId || 'unknown'}); ` +
        `install ${listWords(missing)} by hand, then rerun`,
    );
  }
  const keys: readonly PackageKey[] = missing.length > 0 ? missing : ['keepalived', 'haproxy'];
  const pkgs = keys.map((k) => playbook.packages[k]);
  const pm = SCRIPT[facts.pkgManager];
  const reasons = [
    ...(repair ? ['dpkg reports an interrupted installation (finished first with dpkg --configure -a)'] : []),
    ...(missing.length > 0 ? [`${listWords(missing)} ${missing.length === 1 ? 'is' : 'are'} not installed`] : []),
  ];
  return {
    id,
    title,
    ops: [{ op: 'run', script: pm.script(pkgs), description: `install ${listWords(pkgs)} with ${pm.tool}` }],
    reason: reasons.join('; '),
  };
}
