// TTY output: a listr2 task tree (phase / host → current step) driven by the runner's events.
import { Listr, type ListrTaskWrapper } from 'listr2';
import type { RunEvent } from '../types.js';

type Stage = { key: string; title: string };

interface Waiter {
  resolve: (skipMsg?: string) => void;
  reject: (err: Error) => void;
  task?: ListrTaskWrapper<unknown, never, never>;
}

/** Returns the event sink and a function that finishes the tree when the run ends. */
export function listrUi(order: string[], primary: string): { emit: (e: RunEvent) => void; finish: (failed: boolean) => Promise<void> } {
  const stages: Stage[] = [
    { key: 'facts', title: 'connect, lock and read facts' },
    { key: 'packages', title: 'install keepalived and haproxy' },
    ...order.map((h) => ({ key: `host:${h}`, title: `${h} (${h === primary ? 'primary' : 'backup'})` })),
    { key: 'final', title: 'final check: VIP and kubectl through the VIP' },
  ];
  const waiters = new Map<string, Waiter>();
  const pending = new Map<string, { ok: boolean; msg?: string; err?: Error }>();
  const counts = new Map<string, { ok: number; changed: number }>();
  /** The gate that passed in a stage, shown in its title once it is done. */
  const passed = new Map<string, string>();
  let current = 'facts';

  const settle = (key: string, outcome: { ok: boolean; msg?: string; err?: Error }) => {
    const w = waiters.get(key);
    if (!w) {
      pending.set(key, outcome);
      return;
    }
    if (outcome.ok) w.resolve(outcome.msg);
    else w.reject(outcome.err ?? new Error('failed'));
    waiters.delete(key);
  };
  const advance = (next: string) => {
    const found = stages.findIndex((s) => s.key === next);
    const idx = found === -1 ? stages.length : found;
    for (const s of stages.slice(stages.findIndex((x) => x.key === current), idx)) {
      const c = counts.get(s.key);
      settle(s.key, { ok: true, ...(s.key === 'packages' && !c ? { msg: 'nothing to install' } : {}) });
    }
    current = next;
  };
  const setOutput = (key: string, text: string) => {
    const w = waiters.get(key);
    if (w?.task) w.task.output = text;
  };

  const list = new Listr(
    stages.map((s) => ({
      title: s.title,
      task: (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) =>
        new Promise<void>((resolve, reject) => {
          const done = pending.get(s.key);
          const w: Waiter = {
            resolve: (msg) => {
              const c = counts.get(s.key);
              if (c && s.key.startsWith('host:')) task.title = `${s.title}: ${c.changed} step(s) changed, ${c.ok} already right`;
              const gate = passed.get(s.key);
              if (gate) task.title = `${task.title}${s.key.startsWith('host:') ? '; ' : ': '}${gate}`;
              if (msg) task.skip(msg);
              resolve();
            },
            reject,
            task,
          };
          if (done) {
            pending.delete(s.key);
            if (done.ok) w.resolve(done.msg);
            else reject(done.err);
            return;
          }
          waiters.set(s.key, w);
        }),
    })),
    // listr2 would otherwise add its own SIGINT listener that exits 127 before ours can stop the run and print the recap.
    { concurrent: false, exitOnError: true, registerSignalListeners: false },
  );
  const running = list.run().catch(() => undefined);

  const emit = (e: RunEvent) => {
    if (e.type === 'phase') {
      if (e.phase === 'packages') advance('packages');
      if (e.phase === 'rollout') advance(`host:${order[0]}`);
      if (e.phase === 'done') advance('final');
    } else if (e.type === 'host-start') {
      advance(`host:${e.host}`);
    } else if (e.type === 'step-start') {
      setOutput(current, `${e.host}: ${e.title}…`);
    } else if (e.type === 'step-end') {
      const c = counts.get(current) ?? { ok: 0, changed: 0 };
      if (e.status === 'ok') c.ok++;
      if (e.status === 'changed') c.changed++;
      counts.set(current, c);
      setOutput(current, `${e.host}: ${e.title}: ${e.status}`);
    } else if (e.type === 'gate-wait') {
      setOutput(current, `${e.gate}: ${e.message}`);
    } else if (e.type === 'gate-pass') {
      passed.set(current, `${e.gate}: ${e.message}`);
      setOutput(current, `${e.gate}: passed: ${e.message}`);
    }
  };

  const finish = async (failed: boolean) => {
    if (failed) settle(current, { ok: false, err: new Error('failed (details below)') });
    else advance('__end__');
    for (const [key] of waiters) settle(key, { ok: true, msg: 'not reached' });
    await running;
  };
  return { emit, finish };
}
