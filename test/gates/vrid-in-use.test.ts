// The VRID-in-use preflight (issue 9): both listeners (python3, perl) on this machine's loopback, the
// parser, the choice of a free VRID and the verdict.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LISTENER_PERL, LISTENER_PY, foreignAdverts, freeVrid, listenSeconds, parseVridListen, preflightVrid, startedListen, vridCollectScript, vridListenScript } from '../../src/gates/vrid-in-use.js';
import { ManyErrors } from '../../src/errors.js';
import type { RunEvent } from '../../src/types.js';

const run = promisify(execFile);
const root = process.getuid?.() === 0;

// A VRRPv2 advert (VRID 77, priority 120, VIPs 10.9.8.7 and 10.9.8.6) sent as IP protocol 112 to 127.0.0.1: loopback only.
const SEND = `import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
p = bytes([0x21, 77, 120, 2, 1, 1, 0, 0]) + socket.inet_aton("10.9.8.7") + socket.inet_aton("10.9.8.6") + b"kha-pass"
for _ in range(8):
    s.sendto(p, ("127.0.0.1", 0)); time.sleep(0.1)`;

async function listenWith(cmd: string, args: string[]): Promise<string> {
  const listener = run(cmd, [...args, '1.5', '127.0.0.1'], { encoding: 'utf8' });
  await new Promise((r) => setTimeout(r, 300));
  await run('python3', ['-c', SEND]);
  return (await listener).stdout;
}

describe('the VRRP listeners', { skip: root ? false : 'raw sockets need root' }, () => {
  for (const [name, cmd, args] of [
    ['python3', 'python3', ['-c', LISTENER_PY]],
    ['perl', 'perl', ['-e', LISTENER_PERL]],
  ] as const) {
    it(`${name}: hears an advert and reports its source, VRID, priority, version and VIPs`, async () => {
      const out = await listenWith(cmd, [...args]);
      const a = parseVridListen(out);
      assert.equal(a?.kind, 'heard', out);
      assert.deepEqual(a.kind === 'heard' && a.adverts, [{ source: '127.0.0.1', vrid: 77, priority: 120, version: 2, vips: ['10.9.8.7', '10.9.8.6'] }]);
    });
  }
  it('hears nothing when nothing is sent, and says it listened', async () => {
    const out = (await run('python3', ['-c', LISTENER_PY, '0.5', '127.0.0.1'], { encoding: 'utf8' })).stdout;
    assert.deepEqual(parseVridListen(out), { kind: 'heard', adverts: [] });
  });
});

describe('vridListenScript and vridCollectScript', () => {
  it('under sh: the listen starts in the background and the script returns at once; the collect waits for it and removes its file', { skip: root ? false : 'raw sockets need root' }, () => {
    const t0 = Date.now();
    const started = execFileSync('sh', ['-c', vridListenScript({ vrid: 51, advertInt: 1, keepalivedConf: '/nonexistent/keepalived.conf' })], { encoding: 'utf8' });
    assert.ok(Date.now() - t0 < 1500, `the lock command waited ${Date.now() - t0} ms for the listen`);
    const a = parseVridListen(started);
    assert.equal(a?.kind, 'started', started);
    const file = a.kind === 'started' ? a.file : '';
    assert.equal(startedListen(started), file);
    const heard = execFileSync('sh', ['-c', vridCollectScript(file, 1)], { encoding: 'utf8' });
    assert.equal(parseVridListen(heard)?.kind, 'heard', heard);
    assert.ok(Date.now() - t0 >= 3000, 'collected only after the whole listen');
    assert.equal(existsSync(file), false, 'the listener file is removed');
  });
  it('the listener does not keep the run lock (fd 9) once the lock command has ended', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kha-vrrp-lock-'));
    const lock = join(dir, 'lock');
    const out = execFileSync('sh', ['-c', `exec 9>>${lock}; flock -n 9 || exit 9\n${vridListenScript({ vrid: 51, advertInt: 1, keepalivedConf: '/nonexistent' })}`], { encoding: 'utf8' });
    const file = startedListen(out);
    try {
      // The listener (python, perl or the "unable" path alike) is still running: the lock must be free.
      execFileSync('flock', ['-n', lock, 'true']);
    } finally {
      if (file) execFileSync('sh', ['-c', vridCollectScript(file, 1)]);
    }
  });
  it('a listener file that is not ours never reaches a shell', () => {
    assert.equal(startedListen('@@KHA-VRRP started /tmp/kha-deploy-vrrp.x;rm -rf /\n'), undefined);
    assert.throws(() => vridCollectScript('/etc/passwd', 1), /not a listener file/);
  });
  it('listens three advert intervals, at least 2.5 s', () => {
    assert.equal(listenSeconds(1), 3.2);
    assert.equal(listenSeconds(0.5), 2.5);
    assert.equal(listenSeconds(3), 9.2);
  });
});

describe('parseVridListen', () => {
  it('skip, unable, a traceback, and no listener at all', () => {
    assert.deepEqual(parseVridListen('x\n@@KHA-VRRP skip\n'), { kind: 'skipped' });
    assert.deepEqual(parseVridListen('@@KHA-VRRP unable neither python3 nor perl is installed\n'), { kind: 'unable', why: 'neither python3 nor perl is installed' });
    assert.equal(parseVridListen('@@KHA-VRRP Traceback (most recent call last):\n@@KHA-VRRP PermissionError: [Errno 1]\n')?.kind, 'unable');
    assert.equal(parseVridListen('@@KHA-VIPNEIGH self\n'), undefined);
  });
});

describe('the verdict', () => {
  const heard = (adverts: string[]): string => [...adverts.map((a) => `@@KHA-VRRP adv ${a}`), '@@KHA-VRRP listened'].join('\n');
  const ours = new Set(['172.16.86.11', '172.16.86.12', '172.16.86.13']);

  it('adverts from our masters, or on another VRID, are not foreign', () => {
    const answers = [{ host: 'master1', answer: parseVridListen(heard(['172.16.86.12 51 140 2 172.16.86.100', '172.16.86.14 52 100 2 172.16.86.200'])) }];
    assert.deepEqual(foreignAdverts(51, answers, ours), []);
  });
  it('a foreign router on our VRID: refused, naming its address and VIPs, with a free VRID suggested', () => {
    const events: RunEvent[] = [];
    const answers = [
      { host: 'master1', output: heard(['172.16.86.14 51 100 2 172.16.86.200', '172.16.86.15 52 90 2 172.16.86.201']) },
      { host: 'master2', output: heard(['172.16.86.14 51 100 2 172.16.86.200']) },
      { host: 'master3', output: '@@KHA-VRRP skip' },
    ];
    assert.throws(
      () => preflightVrid({ vrid: 51, vip: '172.16.86.100', unicast: false, answers, masterAddrs: ours, emit: (e) => events.push(e) }),
      (err: unknown) => {
        assert.ok(err instanceof ManyErrors);
        assert.match(err.message, /virtual_router_id 51 is in use by a router that is not a master: no host was changed/);
        const e = err.errors[0]!;
        assert.match(e.message, /172\.16\.86\.14 \(priority 100, VRRPv2, VIPs 172\.16\.86\.200; heard on master1, master2\)/);
        assert.match(String((e as { hint?: string }).hint), /set virtual_router_id=53 \(no advert heard on it\)/);
        return true;
      },
    );
  });
  it('with vrrp_unicast the foreign multicast router is a warning', () => {
    const events: RunEvent[] = [];
    preflightVrid({ vrid: 51, vip: '172.16.86.100', unicast: true, answers: [{ host: 'master1', output: heard(['172.16.86.14 51 100 2 172.16.86.200']) }], masterAddrs: ours, emit: (e) => events.push(e) });
    assert.equal(events.length, 1);
    assert.match(JSON.stringify(events[0]), /does not take part in our election/);
  });
  it('a master that cannot listen is a warning', () => {
    const events: RunEvent[] = [];
    preflightVrid({ vrid: 51, vip: '172.16.86.100', unicast: false, answers: [{ host: 'master2', output: '@@KHA-VRRP unable neither python3 nor perl is installed' }], masterAddrs: ours, emit: (e) => events.push(e) });
    assert.match(JSON.stringify(events), /could not listen for VRRP adverts.*neither python3 nor perl/);
  });
  it('freeVrid: the next unused VRID upwards, wrapping at 255', () => {
    const adv = (vrid: number) => ({ source: '10.0.0.1', vrid, priority: 1, version: 2, vips: [] });
    assert.equal(freeVrid(51, [adv(51), adv(52)]), 53);
    assert.equal(freeVrid(255, [adv(255), adv(1)]), 2);
  });
});
