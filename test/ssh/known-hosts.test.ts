import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  fingerprintSha256,
  formatKnownHostsLine,
  hostKeyAlgorithmsFor,
  keyTypeOfBlob,
  lookupHost,
  matchPatternList,
  parseKnownHosts,
  verifyHostKey,
} from '../../src/ssh/known-hosts.js';
import { sshKeygen, tempDir, type TestKey } from './keygen.js';

describe('known_hosts', () => {
  const tmp = tempDir();
  let ed: TestKey, ec: TestKey, rsa: TestKey, other: TestKey;
  before(() => {
    ed = sshKeygen(tmp.dir, 'ed', 'ed25519');
    ec = sshKeygen(tmp.dir, 'ec', 'ecdsa');
    rsa = sshKeygen(tmp.dir, 'rsa', 'rsa');
    other = sshKeygen(tmp.dir, 'other', 'ed25519');
  });
  after(() => tmp.cleanup());

  it('fingerprints exactly like ssh-keygen -lf and reads the key type from the blob', () => {
    for (const k of [ed, ec, rsa]) {
      assert.equal(fingerprintSha256(k.blob), k.fingerprint);
      assert.equal(keyTypeOfBlob(k.blob), k.type);
    }
    assert.equal(ec.type, 'ecdsa-sha2-nistp384');
    assert.equal(rsa.type, 'ssh-rsa');
    assert.throws(() => keyTypeOfBlob(Buffer.from([0, 0, 0, 9, 1])));
  });

  it('parses plain, [host]:port, comments, blank lines, @revoked, @cert-authority (kept apart) and skips junk', () => {
    const text = [
      '# a comment',
      '',
      `   master1,10.0.0.1 ${ed.pub} comment words`,
      `[10.0.0.2]:2222 ${ec.pub}`,
      `@revoked * ${other.pub}`,
      `@cert-authority *.example.com ${rsa.pub}`,
      'garbage line',
      `bad ssh-ed25519 !!!notbase64`,
      `mismatch ssh-rsa ${ed.pub.split(' ')[1]}`,
      `10.0.0.3\t${rsa.pub}\r`,
    ].join('\n');
    const entries = parseKnownHosts(text);
    assert.deepEqual(
      entries.map((e) => [e.line, e.revoked, e.certAuthority ?? false, e.patterns, e.type]),
      [
        [3, false, false, ['master1', '10.0.0.1'], 'ssh-ed25519'],
        [4, false, false, ['[10.0.0.2]:2222'], 'ecdsa-sha2-nistp384'],
        [5, true, false, ['*'], 'ssh-ed25519'],
        [6, false, true, ['*.example.com'], 'ssh-rsa'],
        [10, false, false, ['10.0.0.3'], 'ssh-rsa'],
      ],
    );
    // A CA key is never a host's key: it only signs certificates, which ssh2 cannot negotiate.
    assert.equal(lookupHost(entries, 'a.example.com', 22).keys.length, 0);
    assert.deepEqual(lookupHost(entries, 'a.example.com', 22).authorities.map((e) => e.line), [6]);
    assert.deepEqual(lookupHost(entries, 'MASTER1', 22).keys.map((k) => k.type), ['ssh-ed25519']);
    assert.equal(lookupHost(entries, 'master1', 2222).keys.length, 0, 'port 2222 is [master1]:2222, not master1');
    assert.deepEqual(lookupHost(entries, '10.0.0.2', 2222).keys.map((k) => k.type), ['ecdsa-sha2-nistp384']);
    assert.equal(lookupHost(entries, '10.0.0.2', 22).keys.length, 0);
    assert.equal(lookupHost(entries, 'anything', 22).revoked.length, 1);
  });

  it('matches entries hashed by ssh-keygen -H, including [host]:port', () => {
    const file = join(tmp.dir, 'hashed');
    writeFileSync(file, `[127.0.0.1]:2222 ${ed.pub}\nexample.com ${rsa.pub}\n`);
    execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
    const text = readFileSync(file, 'utf8');
    assert.match(text, /^\|1\|/m);
    assert.doesNotMatch(text, /example\.com|127\.0\.0\.1/);
    const entries = parseKnownHosts(text);
    assert.equal(entries.length, 2);
    assert.deepEqual(verifyHostKey(entries, '127.0.0.1', 2222, ed.blob), { result: 'match' });
    assert.deepEqual(verifyHostKey(entries, '127.0.0.1', 22, ed.blob), { result: 'unknown' });
    assert.deepEqual(verifyHostKey(entries, 'Example.COM', 22, rsa.blob), { result: 'match' });
    assert.deepEqual(verifyHostKey(entries, 'example.com', 22, other.blob), { result: 'changed', known: [rsa.fingerprint], where: ['line 2'] });
  });

  it('verifies: match, unknown, changed (same or other type), revoked wins', () => {
    const entries = parseKnownHosts(`h1 ${ed.pub}\nh1 ${rsa.pub}\n[h2]:2222 ${ec.pub}\n@revoked h3 ${other.pub}\nh3 ${other.pub}\n`, '/kh');
    assert.deepEqual(verifyHostKey(entries, 'h1', 22, ed.blob), { result: 'match' });
    assert.deepEqual(verifyHostKey(entries, 'h1', 22, rsa.blob), { result: 'match' });
    assert.deepEqual(verifyHostKey(entries, 'h1', 22, other.blob), { result: 'changed', known: [ed.fingerprint, rsa.fingerprint], where: ['/kh:1', '/kh:2'] });
    assert.deepEqual(verifyHostKey(entries, 'h2', 2222, ed.blob), { result: 'changed', known: [ec.fingerprint], where: ['/kh:3'] });
    assert.deepEqual(verifyHostKey(entries, 'h2', 22, ec.blob), { result: 'unknown' });
    assert.deepEqual(verifyHostKey(entries, 'h3', 22, other.blob), { result: 'revoked', where: ['/kh:4'] });
    assert.deepEqual(verifyHostKey(entries, 'nobody', 22, ed.blob), { result: 'unknown' });
  });

  it('@cert-authority: a host covered only by a CA line is neither known nor unknown, and the verdict names the line', () => {
    const user = parseKnownHosts(`h1 ${ed.pub}\n`, '/home/u/.ssh/known_hosts');
    const global = parseKnownHosts(`# CA\n@cert-authority *.lab,!bad.lab ${rsa.pub}\n`, '/etc/ssh/ssh_known_hosts');
    const all = [...user, ...global];
    assert.deepEqual(verifyHostKey(all, 'm1.lab', 22, ed.blob), { result: 'cert-authority', where: ['/etc/ssh/ssh_known_hosts:2'] });
    // The CA's own key presented as a plain host key is not trusted either.
    assert.deepEqual(verifyHostKey(all, 'm1.lab', 22, rsa.blob), { result: 'cert-authority', where: ['/etc/ssh/ssh_known_hosts:2'] });
    assert.deepEqual(verifyHostKey(all, 'bad.lab', 22, ed.blob), { result: 'unknown' });
    // A plain key for the host still decides: known → match, other → changed.
    const withPlain = [...all, ...parseKnownHosts(`m1.lab ${ec.pub}\n`, '/x')];
    assert.deepEqual(verifyHostKey(withPlain, 'm1.lab', 22, ec.blob), { result: 'match' });
    assert.equal(verifyHostKey(withPlain, 'm1.lab', 22, ed.blob).result, 'changed');
    assert.deepEqual(hostKeyAlgorithmsFor(lookupHost(all, 'm1.lab', 22).keys), [], 'CA keys do not restrict the offered algorithms');
  });

  it('supports wildcards and negation', () => {
    assert.equal(matchPatternList('master1.lab', ['*.lab']), true);
    assert.equal(matchPatternList('master1.lab', ['master?.lab']), true);
    assert.equal(matchPatternList('master10.lab', ['master?.lab']), false);
    assert.equal(matchPatternList('db.lab', ['*.lab', '!db.lab']), false);
    assert.equal(matchPatternList('db.lab', ['!db.lab']), false, 'a negation alone never matches');
    assert.equal(matchPatternList('a+b.lab', ['a+b.lab']), true, 'regex characters are literal');
    assert.equal(matchPatternList('[10.0.0.1]:2222', ['[10.0.0.*]:2222']), true);
    const entries = parseKnownHosts(`*.lab,!bad.lab ${ed.pub}\n`);
    assert.deepEqual(verifyHostKey(entries, 'm1.lab', 22, ed.blob), { result: 'match' });
    assert.deepEqual(verifyHostKey(entries, 'bad.lab', 22, ed.blob), { result: 'unknown' });
  });

  it('formats accept-new lines that parse back and that ssh-keygen reads', () => {
    const line22 = formatKnownHostsLine('10.0.0.5', 22, ed.type, ed.blob);
    const line2222 = formatKnownHostsLine('127.0.0.1', 2222, 'rsa-sha2-512', rsa.blob);
    assert.equal(line22, `10.0.0.5 ${ed.pub}`);
    assert.equal(line2222, `[127.0.0.1]:2222 ${rsa.pub}`);
    const file = join(tmp.dir, 'formatted');
    writeFileSync(file, `${line22}\n${line2222}\n`);
    const found = execFileSync('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', file], { encoding: 'utf8' });
    assert.match(found, /\[127\.0\.0\.1\]:2222 ssh-rsa/);
    assert.deepEqual(verifyHostKey(parseKnownHosts(`${line22}\n${line2222}\n`), '127.0.0.1', 2222, rsa.blob), { result: 'match' });
  });

  it('maps known key types to ssh2 serverHostKey algorithms', () => {
    assert.deepEqual(hostKeyAlgorithmsFor([{ type: 'ssh-rsa' }]), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    assert.deepEqual(hostKeyAlgorithmsFor([{ type: 'ssh-ed25519' }, { type: 'ecdsa-sha2-nistp256' }, { type: 'ssh-ed25519' }]), [
      'ssh-ed25519',
      'ecdsa-sha2-nistp256',
    ]);
    assert.deepEqual(hostKeyAlgorithmsFor([{ type: 'rsa-sha2-256' }]), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    assert.deepEqual(hostKeyAlgorithmsFor([{ type: 'ssh-dss' }]), []);
  });
});
