import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { describe, it } from 'node:test';
import {
  PASSWORD_REQUIRED_NOTE,
  SudoPromptWatcher,
  WRONG_PASSWORD_NOTE,
  findReadyLine,
  isSudoPasswordRequired,
  withSudoNote,
  wrapCommand,
} from '../../src/ssh/command.js';
import { Semaphore } from '../../src/ssh/semaphore.js';
import { shellQuote } from '../../src/shell.js';

const script = `echo "it's $HOME" \`id\`\nexit 2`;

describe('wrapCommand', () => {
  it('wraps in sh -c, sudo -n, or sudo -S with a unique prompt and a start marker; never a password', () => {
    assert.equal(wrapCommand(script, false, false).command, `sh -c 'echo "it'\\''s $HOME" \`id\`\nexit 2'`);
    assert.equal(wrapCommand(script, true, false).command, `sudo -n -- sh -c 'echo "it'\\''s $HOME" \`id\`\nexit 2'`);
    const w = wrapCommand(script, true, true, 'abc123');
    assert.equal(w.prompt, '[kha-deploy sudo password abc123]');
    assert.equal(w.startMarker, 'kha-deploy-started-abc123');
    assert.equal(w.command, `sudo -S -p '[kha-deploy sudo password abc123]' -- sh -c ${shellQuote(`printf '%s\\n' kha-deploy-started-abc123 >&2\n${script}`)}`);
    assert.notEqual(wrapCommand(script, true, true).prompt, wrapCommand(script, true, true).prompt, 'a fresh prompt per command');
  });

  it('the wrapped command, run by a shell, runs the script exactly once uninterpreted', () => {
    const out = execFileSync('sh', ['-c', wrapCommand(`printf '%s|' '$a' "b'c" '\`x\`'`, false, false).command], { encoding: 'utf8' });
    assert.equal(out, "$a|b'c|`x`|");
  });
});

describe('SudoPromptWatcher', () => {
  const prompt = '[kha-deploy sudo password n1]';
  const marker = 'kha-deploy-started-n1';

  it('finds a prompt split across chunks, then the start marker; strips both', () => {
    const w = new SudoPromptWatcher(prompt, marker);
    assert.deepEqual(w.push(Buffer.from('We trust you have received the usual lecture\n[kha-deploy sudo ')), []);
    assert.deepEqual(w.push(Buffer.from('password n1]')), ['password']);
    assert.deepEqual(w.push(Buffer.from(`${marker.slice(0, 5)}`)), []);
    assert.deepEqual(w.push(Buffer.from(`${marker.slice(5)}\nwarn: ü\n`)), ['started']);
    assert.equal(w.text(), 'We trust you have received the usual lecture\nwarn: ü\n');
    assert.equal(w.passwordRejected, false);
  });

  it('no prompt (NOPASSWD): only started', () => {
    const w = new SudoPromptWatcher(prompt, marker);
    assert.deepEqual(w.push(Buffer.from(`${marker}\n`)), ['started']);
    assert.equal(w.text(), '');
  });

  it('a second prompt means the password was wrong: reported once, with a note', () => {
    const w = new SudoPromptWatcher(prompt, marker);
    assert.deepEqual(w.push(Buffer.from(prompt)), ['password']);
    assert.deepEqual(w.push(Buffer.from(`Sorry, try again.\n${prompt}`)), ['wrong-password']);
    assert.deepEqual(w.push(Buffer.from(`sudo: no password was provided\n${prompt}`)), []);
    assert.equal(w.text(), `Sorry, try again.\nsudo: no password was provided\n${WRONG_PASSWORD_NOTE}\n`);
  });
});

describe('helpers', () => {
  it('isSudoPasswordRequired', () => {
    assert.equal(isSudoPasswordRequired('sudo: a password is required\n'), true);
    assert.equal(isSudoPasswordRequired('sudo: a terminal is required to read the password; either use the -S option'), true);
    assert.equal(isSudoPasswordRequired('permission denied'), false);
  });

  it('withSudoNote tells how to give the password, once', () => {
    const noted = withSudoNote('sudo: a password is required');
    assert.equal(noted, `sudo: a password is required\n${PASSWORD_REQUIRED_NOTE}\n`);
    assert.match(noted, /KHA_BECOME_PASS.*--ask-become-pass/);
    assert.equal(withSudoNote(noted), noted);
    assert.equal(withSudoNote('other\n'), 'other\n');
    assert.ok(isSudoPasswordRequired(noted));
  });

  it('findReadyLine needs a whole line', () => {
    assert.equal(findReadyLine('a\nREADY\n', 'READY'), 2);
    assert.equal(findReadyLine('READY\r\n', 'READY'), 0);
    assert.equal(findReadyLine('a\nREADY', 'READY'), -1);
    assert.equal(findReadyLine('xREADY\n', 'READY'), -1);
  });


  it('Semaphore bounds concurrency and hands slots over in order', async () => {
    const sem = new Semaphore(2);
    let active = 0;
    let max = 0;
    await Promise.all(
      Array.from({ length: 7 }, async () => {
        const release = await sem.acquire();
        active++;
        max = Math.max(max, active);
        await new Promise((r) => setTimeout(r, 5));
        active--;
        release();
        release(); // double release is harmless
      }),
    );
    assert.equal(max, 2);
    assert.equal(sem.inUse, 0);
  });
});
