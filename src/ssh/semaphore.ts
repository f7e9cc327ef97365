// Bounds concurrent channels on one connection: sshd refuses more than MaxSessions (default 10).

export class Semaphore {
  private active = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async acquire(): Promise<() => void> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiters.push(resolve));
    else this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next(); // hand the slot over directly: active stays the same
      else this.active--;
    };
  }

  get inUse(): number {
    return this.active;
  }
}
