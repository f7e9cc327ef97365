import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import {
  PASSWORD_REQUIRED_NOTE,
  SudoPromptWatcher,
  WRONG_PASSWORD_NOTE,
  findPgid,
  findReadyLine,
  isSudoPasswordRequired,
  killScript,
  stripPgidLine,
  withSudoNote,
  wrapCommand,
} from '../../src/ssh/command.js';
import { Semaphore } from '../../src/ssh/semaphore.js';
import { scriptTag } from '../../src/shell.js';
import { gone } from './procs.js';

const script = `echo "it's $HOME" \`id\`\nexit 2`;

/** The script an `sh -c <quoted>` command (after `prefix`) hands to the inner sh, as that sh receives it. */
function innerScript(command: string, prefix: string): string {
  assert.ok(command.startsWith(prefix), command);
  return execFileSync('sh', ['-c', `printf %s ${command.slice(prefix.length)}`], { encoding: 'utf8' });
}

function pgidLine(inner: string, index: number): string {
  const line = inner.split('\n')[index] ?? '';
  assert.match(line, /@@KHA-PGID/);
  return line;
}

describe('wrapCommand', () => {
  it('wraps in sh -c, sudo -n, or sudo -S with a unique prompt and a start marker; never a password', () => {
    const plain = wrapCommand(script, false, false).command;
    const inner = innerScript(plain, 'sh -c ');
    assert.equal(inner, `${pgidLine(inner, 0)}\n${script}`, 'the process group line, then the script untouched');
    assert.equal(wrapCommand(script, true, false).command, `sudo -n -- ${plain}`);
    const w = wrapCommand(script, true, true, 'abc123');
    assert.equal(w.prompt, '[kha-deploy sudo password abc123]');
    assert.equal(w.startMarker, 'kha-deploy-started-abc123');
    const sudoInner = innerScript(w.command, `sudo -S -p '[kha-deploy sudo password abc123]' -- sh -c `);
    assert.equal(sudoInner, `${pgidLine(inner, 0)}; printf '%s\\n' kha-deploy-started-abc123 >&2\n${script}`, 'the start marker follows the process group line');
    assert.notEqual(wrapCommand(script, true, true).prompt, wrapCommand(script, true, true).prompt, 'a fresh prompt per command');
  });

  it('keeps the tag line first and moves the script\'s lines down by exactly one', () => {
    const tagged = `${scriptTag('facts')}\necho one\nexit 2`;
    const inner = innerScript(wrapCommand(tagged, false, false).command, 'sh -c ');
    assert.equal(inner, `${scriptTag('facts')}\n${pgidLine(inner, 1)}\necho one\nexit 2`);
    const r = spawnSync('sh', ['-c', wrapCommand('true\nno-such-command-kha', false, false).command], { encoding: 'utf8' });
    assert.match(r.stderr, /^@@KHA-PGID \d+\n.*\b3\b.*no-such-command-kha/, 'sh reports the line as 2 + 1');
  });

  it('the wrapped command, run by a shell, runs the script exactly once uninterpreted, with no arguments', () => {
    const r = spawnSync('sh', ['-c', wrapCommand(`printf '%s|' '$a' "b'c" '\`x\`' "$#"; exit 3`, false, false).command], { encoding: 'utf8' });
    assert.equal(r.stdout, "$a|b'c|`x`|0|");
    assert.equal(r.status, 3);
  });

  it('the script first prints its process group on stderr: the group its children are in', () => {
    // setsid: a session and group of their own, as sshd gives each command.
    const r = spawnSync('setsid', ['sh', '-c', wrapCommand('sleep 0.2 & cut -d" " -f5 /proc/$!/stat; echo warn >&2; wait', false, false).command], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, `@@KHA-PGID ${r.pid}\nwarn\n`);
    assert.equal(r.stdout, `${r.pid}\n`);
    assert.equal(findPgid(r.stderr), r.pid);
    assert.equal(stripPgidLine(r.stderr), 'warn\n');
  });
});

describe('process group marker and kill', () => {
  it('findPgid needs the whole line and refuses groups 0 and 1; stripPgidLine removes only the first', () => {
    assert.equal(findPgid('sudo: warning\n@@KHA-PGID 4242\nrest'), 4242);
    assert.equal(findPgid('[kha-deploy sudo password n]@@KHA-PGID 77\n'), 77, 'right after a prompt without a newline');
    assert.equal(findPgid('@@KHA-PGID 4242'), undefined, 'incomplete: more digits may follow');
    assert.equal(findPgid('@@KHA-PGID 1\n'), undefined);
    assert.equal(findPgid('@@KHA-PGID 0\n'), undefined);
    assert.equal(stripPgidLine('@@KHA-PGID 9\nout @@KHA-PGID 8\n'), 'out @@KHA-PGID 8\n');
  });

  it('killScript ends a whole process group: TERM first, KILL when TERM is ignored; starts with its tag', async () => {
    assert.match(killScript(1234), /^# kha-deploy kill 1234\n/);
    assert.throws(() => killScript(1), /refusing/);
    assert.throws(() => killScript(0), /refusing/);
    const dir = mkdtempSync(join(tmpdir(), 'kha-kill-'));
    for (const onTerm of ['note', 'ignore'] as const) {
      const note = join(dir, onTerm);
      const trap = onTerm === 'note' ? `trap 'echo term > ${note}; exit 0' TERM` : `trap '' TERM`;
      const group = spawn('sh', ['-c', `${trap}; sleep 300 & echo $!; wait`], { detached: true, stdio: ['ignore', 'pipe', 'ignore'] });
      const childPid = Number(await new Promise<string>((r) => group.stdout.once('data', (b: Buffer) => r(b.toString()))));
      const exited = new Promise<NodeJS.Signals | null>((r) => group.on('exit', (_code, signal) => r(signal)));
      const t0 = Date.now();
      // Not spawnSync: a blocked event loop would not reap the group's leader.
      await promisify(execFile)('sh', ['-c', killScript(group.pid!)]);
      const took = Date.now() - t0;
      assert.ok(await gone(childPid, 200), 'the background child went with its group');
      if (onTerm === 'note') {
        assert.equal(readFileSync(note, 'utf8'), 'term\n', 'TERM came first: the script could clean up');
        assert.equal(await exited, null);
      } else {
        assert.equal(await exited, 'SIGKILL');
        assert.ok(took >= 900 && took < 2500, `KILL after the TERM grace: ${took} ms`);
      }
    }
  });
});

describe('SudoPromptWatcher', () => {
  const prompt = '[kha-deploy sudo password n1]';
  const marker = 'kha-deploy-started-n1';

  it('finds a prompt split across chunks, then the start marker; strips both', () => {
    const w = new SudoPromptWatcher(prompt, marker);
    assert.deepEqual(w.push(Buffer.from('We trust you have received the usual lecture\n[kha-deploy sudo ')), []);
    assert.deepEqual(w.push(Buffer.from('password n1]')), ['password']);
    assert.deepEqual(w.push(Buffer.from(`@@KHA-PGID 321\n${marker.slice(0, 5)}`)), []);
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
