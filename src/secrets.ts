// Secrets come from the environment or a no-echo TTY prompt; never from argv, never printed.
import { UsageError } from './errors.js';

export async function readSecret(envVar: string, prompt: string | undefined): Promise<string | undefined> {
  if (prompt === undefined) return process.env[envVar] || undefined;
  if (!process.stdin.isTTY) {
    if (process.env[envVar]) return process.env[envVar];
    throw new UsageError(`cannot prompt for a secret: stdin is not a terminal`, { hint: `set ${envVar} in the environment instead` });
  }
  return promptHidden(prompt);
}

/** Read one line from the TTY without echoing it. */
function promptHidden(prompt: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(prompt);
    stdin.setRawMode(true);
    stdin.resume();
    let value = '';
    const done = (err?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return done();
        if (ch === '\u0003') return done(new UsageError('cancelled at the password prompt'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.on('data', onData);
  });
}
