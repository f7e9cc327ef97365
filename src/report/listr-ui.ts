// TTY output: a listr2 task tree (phase / host → current step) driven by the runner's events.
// The host rows are made when the rollout starts, in the order the runner chose (on a running
// cluster the VIP holder comes last): listr runs rows one after another, so they must follow the run.
import { Listr, type ListrTask, type ListrTaskWrapper } from 'listr2';
import type { RunEvent } from '../types.js';

type Stage = { key: string; title: string };

interface Waiter {
  resolve: (skipMsg?: string) => void;
  reject: (err: Error) => void;
  task?: ListrTaskWrapper<unknown, never, never>;
}

/** Returns the event sink and a function that finishes the tree when the run ends. */
export function listrUi(primary: string): { emit: (e: RunEvent) => void; finish: (failed: boolean) => Promise<void> } {
  const hostStage = (h: string): Stage => ({ key: `host:${h}`, title: `${h} (${h === primary ? 'primary' : 'backup'})` });
  const FINAL: Stage = { key: 'final', title: 'final check: VIP and kubectl through the VIP' };
  /** Every row in the order the run reaches them; the hosts join once the rollout's order is known. */
  let stages: Stage[] = [{ key: 'facts', title: 'connect, lock and read facts' }, { key: 'packages', title: 'install keepalived and haproxy' }, FINAL];
  let orderKnown: (order: string[]) => void = () => undefined;
  const rolloutOrder = new Promise<string[]>((resolve) => (orderKnown = resolve));
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

  /** A row that runs until the events settle it. */
  const row = (s: Stage): ListrTask<unknown, never, never> => ({
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
  });

  const [facts, packages] = stages as [Stage, Stage];
  const list = new Listr(
    [
      row(facts),
      row(packages),
      {
        title: 'roll out, one master at a time',
        // Starts after the packages row, which the rollout phase settles once the order is known; a run that ends sooner never gets here.
        task: async (_ctx: unknown, task: ListrTaskWrapper<unknown, never, never>) => {
          const order = await rolloutOrder;
          task.title = `roll out: ${order.join(' → ')}`;
          return task.newListr(order.map((h) => row(hostStage(h))), { concurrent: false, exitOnError: true });
        },
      },
      row(FINAL),
    ],
    // listr2 would otherwise add its own SIGINT listener that exits 127 before ours can stop the run and print the recap.
    { concurrent: false, exitOnError: true, registerSignalListeners: false },
  );
  const running = list.run().catch(() => undefined);

  const emit = (e: RunEvent) => {
    if (e.type === 'phase') {
      if (e.phase === 'packages') advance('packages');
      if (e.phase === 'rollout' && e.order) {
        stages = [facts, packages, ...e.order.map(hostStage), FINAL];
        orderKnown(e.order);
        advance(`host:${e.order[0]}`);
      }
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
