// Gate deadlines come from the playbook, so operators tune them where they read the rollout.
import type { Playbook } from '../playbook.js';

export function gateTiming(playbook: Playbook, role: 'primary' | 'backup' | 'final'): { timeoutMs: number; intervalMs: number } {
  const g = playbook.gates[role];
  return { timeoutMs: g.timeoutSeconds * 1000, intervalMs: g.intervalSeconds * 1000 };
}
