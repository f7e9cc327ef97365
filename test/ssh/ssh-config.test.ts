// ssh_config reading (fixtures written to a temp home), jump specs, ansible_ssh_common_args, and the
// route of a master: inventory variables over ssh_config over defaults.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { UsageError } from '../../src/errors.js';
import { parseCommonArgs, parseHop, parseProxyCommand, parseProxyJump, shellSplit } from '../../src/ssh/proxy.js';
import { resolveRoute, type RouteHost, type RouteOptions } from '../../src/ssh/route.js';
import { configFiles, evaluateSshConfig, parseSshConfig, readContext, splitArgs } from '../../src/ssh/ssh-config.js';
import { tempDir } from './keygen.js';

const tmp = tempDir('kha-sshcfg-test-');
after(() => tmp.cleanup());
let n = 0;

/** A fresh home with ~/.ssh/config = `text` (and more files under ~/.ssh). */
function home(text: string, more: Record<string, string> = {}): string {
  const h = join(tmp.dir, `home${++n}`);
  mkdirSync(join(h, '.ssh'), { recursive: true });
  writeFileSync(join(h, '.ssh', 'config'), text);
  for (const [name, body] of Object.entries(more)) {
    mkdirSync(join(h, '.ssh', name, '..'), { recursive: true });
    writeFileSync(join(h, '.ssh', name), body);
  }
  return h;
}

function evalFor(h: string, host: string, user?: string) {
  const ctx = readContext(h);
  return evaluateSshConfig([{ path: join(h, '.ssh', 'config'), system: false }], host, ctx, user);
}

function opts(h: string, over: Partial<RouteOptions> = {}): RouteOptions {
  const ctx = readContext(h);
  return { files: [{ path: join(h, '.ssh', 'config'), system: false }], ctx, acceptNewHostKeys: false, globalKnownHosts: [], ...over };
}

function host(over: Partial<RouteHost> = {}): RouteHost {
  return { name: 'master1', address: 'master1', port: 22, user: 'root', explicit: { address: false, port: false, user: false }, ...over };
}

function throwsUsage(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UsageError, `expected UsageError, got ${String(err)}`);
    assert.equal(err.exitCode, 2);
    assert.match(err.message, re);
    return true;
  });
}

describe('ssh_config: lines', () => {
  it('reads `Key value`, `Key=value`, `Key = value`, quotes, escapes and trailing comments, with line numbers', () => {
    const lines = parseSshConfig(
      ['# comment', '', 'HostName=10.0.0.1', '  User = ops', 'IdentityFile "~/my keys/id" # trailing', "Host a\\ b 'c d'", '\tPORT 2222', 'ProxyCommand ssh -W %h:%p "q"'].join('\n'),
      '/cfg',
    );
    assert.deepEqual(
      lines.map((l) => [l.line, l.keyword, l.args]),
      [
        [3, 'hostname', ['10.0.0.1']],
        [4, 'user', ['ops']],
        [5, 'identityfile', ['~/my keys/id']],
        [6, 'host', ['a b', 'c d']],
        [7, 'port', ['2222']],
        [8, 'proxycommand', ['ssh', '-W', '%h:%p', 'q']],
      ],
    );
    assert.equal(lines[5]!.rest, 'ssh -W %h:%p "q"', 'ProxyCommand keeps its text');
    assert.deepEqual(splitArgs('a "b c" d\\ e'), ['a', 'b c', 'd e']);
    throwsUsage(() => parseSshConfig('Host "open\n', '/cfg'), /^\/cfg:1: unterminated quote/);
    throwsUsage(() => parseSshConfig('= nothing\n', '/cfg'), /^\/cfg:1: cannot read this ssh_config line/);
  });
});

describe('ssh_config: evaluation for one host', () => {
  it('the first value wins, across Host blocks and the global lines before them; IdentityFile accumulates', () => {
    const h = home(['User global', 'Host master*', '  User first', '  IdentityFile ~/.ssh/a', 'Host *', '  User second', '  Port 2222', '  IdentityFile ~/.ssh/b'].join('\n'));
    const c = evalFor(h, 'master1');
    assert.equal(c.user?.value, 'global');
    assert.equal(c.user?.where, `${join(h, '.ssh', 'config')}:1`);
    assert.equal(c.port?.value, '2222');
    assert.deepEqual(c.identityFiles.map((f) => f.value), ['~/.ssh/a', '~/.ssh/b']);
  });

  it('Host patterns: wildcards, ?, negation (which wins), case-insensitive, several per line', () => {
    const h = home(['Host *.lab !db.lab', '  User lab', 'Host m? other', '  Port 2200', 'Host *', '  User fallback'].join('\n'));
    assert.equal(evalFor(h, 'M1.LAB').user?.value, 'lab');
    assert.equal(evalFor(h, 'db.lab').user?.value, 'fallback');
    assert.equal(evalFor(h, 'm1').port?.value, '2200');
    assert.equal(evalFor(h, 'm10').port, undefined, '? is exactly one character');
    assert.equal(evalFor(h, 'other').port?.value, '2200');
  });

  it('ProxyJump and ProxyCommand: whichever comes first wins, the other is ignored', () => {
    const h = home(['Host a', '  ProxyCommand ssh -W %h:%p b1', 'Host *', '  ProxyJump b2'].join('\n'));
    assert.equal(evalFor(h, 'a').proxyCommand?.value, 'ssh -W %h:%p b1');
    assert.equal(evalFor(h, 'a').proxyJump, undefined);
    assert.equal(evalFor(h, 'z').proxyJump?.value, 'b2');
  });

  it('Include: relative to ~/.ssh, wildcards sorted, conditional inside a Host block, the Host state restored after it', () => {
    const h = home(['Include conf.d/*.conf', 'Host m1', '  Include m1-only', 'User after'].join('\n'), {
      'conf.d/10-a.conf': 'Host m1\n  Port 1010\n',
      'conf.d/20-b.conf': 'Host *\n  Port 2020\n  HostName from-b\n',
      'conf.d/ignored.txt': 'Port 9999\n',
      'm1-only': 'User m1user\nHost nothing\n',
    });
    const m1 = evalFor(h, 'm1');
    assert.equal(m1.port?.value, '1010');
    assert.equal(m1.user?.value, 'm1user');
    assert.match(m1.port!.where, /10-a\.conf:2$/);
    const m2 = evalFor(h, 'm2');
    assert.equal(m2.port?.value, '2020');
    assert.equal(m2.user, undefined, 'the line after the m1 block belongs to it (Include does not end a block)');
  });

  it('Match: all, host, originalhost, user evaluated; exec never run (the block is skipped, with a warning)', () => {
    const marker = join(tmp.dir, 'exec-ran');
    const h = home(
      [
        `Match exec "touch ${marker}"`,
        '  User fromexec',
        'Host alias',
        '  HostName real.example',
        'Match host real.example',
        '  Port 2201',
        'Match originalhost alias user kha',
        '  IdentityFile ~/.ssh/kha',
        'Match all',
        '  User everyone',
      ].join('\n'),
    );
    const c = evalFor(h, 'alias', 'kha');
    assert.equal(existsSync(marker), false, 'Match exec ran a command');
    assert.match(c.warnings.join('\n'), /:1: Match exec is not evaluated/);
    assert.equal(c.port?.value, '2201');
    assert.deepEqual(c.identityFiles.map((f) => f.value), ['~/.ssh/kha']);
    assert.equal(c.user?.value, 'everyone');
    assert.equal(evalFor(h, 'alias', 'root').identityFiles.length, 0);
  });

  it('--ssh-config: none reads nothing; a missing file is exit 2; the default is ~/.ssh/config then /etc/ssh/ssh_config', () => {
    assert.deepEqual(configFiles('none', '/h'), []);
    assert.deepEqual(configFiles(undefined, '/h'), [
      { path: '/h/.ssh/config', system: false },
      { path: '/etc/ssh/ssh_config', system: true },
    ]);
    throwsUsage(() => configFiles(join(tmp.dir, 'nope'), '/h'), /--ssh-config .*nope: no such file/);
  });
});

describe('jump specs', () => {
  it('ProxyJump: [user@]host[:port], ssh:// URIs, [v6]:port, several hops, none', () => {
    assert.deepEqual(parseHop('bastion'), { host: 'bastion' });
    assert.deepEqual(parseHop('ops@10.0.0.5:2222'), { host: '10.0.0.5', user: 'ops', port: 2222 });
    assert.deepEqual(parseHop('ssh://ops@b.example:22'), { host: 'b.example', user: 'ops', port: 22 });
    assert.deepEqual(parseHop('[fd00::5]:2200'), { host: 'fd00::5', port: 2200 });
    assert.deepEqual(parseHop('fd00::5'), { host: 'fd00::5' });
    assert.deepEqual(parseProxyJump('a,ops@b:2'), [{ host: 'a' }, { host: 'b', user: 'ops', port: 2 }]);
    assert.deepEqual(parseProxyJump('none'), []);
    assert.throws(() => parseHop('b:99999'), /port "99999"/);
    assert.throws(() => parseHop('b;rm -rf /'), /not a host name/);
  });

  it('ProxyCommand: the `ssh -W %h:%p` family is a jump; anything else is refused', () => {
    assert.deepEqual(parseProxyCommand('ssh -W %h:%p -q ops@bastion'), [{ host: 'bastion', user: 'ops' }]);
    assert.deepEqual(parseProxyCommand("/usr/bin/ssh -q -W '[%h]:%p' -p 2222 -i ~/.ssh/b -l admin bastion"), [{ host: 'bastion', port: 2222, identityFile: '~/.ssh/b', user: 'admin' }]);
    assert.deepEqual(parseProxyCommand('exec ssh -qW %h:%p -J ops@first second'), [{ host: 'first', user: 'ops' }, { host: 'second' }]);
    for (const bad of ['nc -X connect -x proxy:3128 %h %p', 'ssh bastion nc %h %p', 'ssh -W %h:22 bastion', 'ssh -W %h:%p', 'socat - TCP:%h:%p', 'ssh -F other -W %h:%p b']) {
      assert.throws(() => parseProxyCommand(bad), /is not supported/, bad);
    }
  });

  it('ansible_ssh_common_args: -o ProxyJump, -o ProxyCommand (quoted as shlex reads it), -J; the first wins; the rest warned or ignored', () => {
    assert.deepEqual(shellSplit(`-o ProxyCommand="ssh -W %h:%p -q ops@b" -o 'X=1 2' a\\ b`), ['-o', 'ProxyCommand=ssh -W %h:%p -q ops@b', '-o', 'X=1 2', 'a b']);
    assert.equal(parseCommonArgs('-o ProxyJump=ops@b').proxyJump, 'ops@b');
    assert.equal(parseCommonArgs('-oProxyJump=ops@b -J other').proxyJump, 'ops@b');
    assert.equal(parseCommonArgs('-J ops@b:2222').proxyJump, 'ops@b:2222');
    assert.equal(parseCommonArgs(`-o ProxyCommand="ssh -W %h:%p -q ops@b"`).proxyCommand, 'ssh -W %h:%p -q ops@b');
    const kubespray = parseCommonArgs('-o ControlMaster=auto -o ControlPersist=30m -o ConnectionAttempts=100 -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no');
    assert.equal(kubespray.proxyJump, undefined);
    assert.deepEqual(kubespray.warnings.map((w) => w.split(' is ')[0]), ['-o UserKnownHostsFile=/dev/null', '-o StrictHostKeyChecking=no']);
    assert.match(parseCommonArgs('-o ForwardX11=yes -v').warnings.join('\n'), /-o ForwardX11 is not read.*\n-v is not read/);
  });
});

describe('route of a master: inventory variables over ssh_config over defaults', () => {
  it('ssh_config fills what the inventory left unset: HostName for the name, User, Port, IdentityFile with tokens', () => {
    const h = home(['Host master1', '  HostName 10.0.0.11', '  User ubuntu', '  Port 2222', '  IdentityFile %d/.ssh/missing_%h', '  IdentityFile ~/.ssh/id_%r_%p'].join('\n'), { 'id_ubuntu_2222': 'key' });
    const r = resolveRoute(host(), opts(h));
    assert.deepEqual([r.target.address, r.target.user, r.target.port, r.target.privateKeyFile], ['10.0.0.11', 'ubuntu', 2222, join(h, '.ssh', 'id_ubuntu_2222')]);
    assert.match(r.warnings.join('\n'), /IdentityFile .*missing_10\.0\.0\.11 does not exist/);
    assert.equal(r.target.knownHostsFile, join(h, '.ssh', 'known_hosts'));
    assert.deepEqual(r.target.extraKnownHostsFiles, [join(h, '.ssh', 'known_hosts2')]);
    assert.deepEqual(r.jumps, []);
  });

  it('ansible_host, ansible_user, ansible_port, ansible_ssh_private_key_file win over ssh_config; Host matches ansible_host', () => {
    const h = home(['Host 10.0.0.11', '  HostName elsewhere', '  User ubuntu', '  Port 2222', '  IdentityFile ~/.ssh/cfgkey', '  ProxyJump ops@bastion'].join('\n'), { cfgkey: 'k' });
    const r = resolveRoute(host({ address: '10.0.0.11', user: 'kha', port: 22, privateKeyFile: '/inv/key', explicit: { address: true, user: true, port: true } }), opts(h));
    assert.deepEqual([r.target.address, r.target.user, r.target.port, r.target.privateKeyFile], ['10.0.0.11', 'kha', 22, '/inv/key']);
    assert.deepEqual(r.jumps.map((j) => j.label), ['ops@bastion:22'], 'ProxyJump still comes from the block ansible_host matched');
    assert.equal(r.jumps[0]!.privateKeyFile, '/inv/key', "a jump host without an IdentityFile of its own is offered the master's key");
  });

  it('known_hosts: --known-hosts wins; else UserKnownHostsFile (several, tokens); GlobalKnownHostsFile read too', () => {
    const h = home(['Host *', '  UserKnownHostsFile ~/.ssh/kh_%h /other/kh', '  GlobalKnownHostsFile /etc/kh-global'].join('\n'));
    const r = resolveRoute(host(), opts(h));
    assert.equal(r.target.knownHostsFile, join(h, '.ssh', 'kh_master1'));
    assert.deepEqual(r.target.extraKnownHostsFiles, ['/other/kh', '/etc/kh-global']);
    const given = resolveRoute(host(), opts(h, { knownHosts: '/lab/known_hosts' }));
    assert.equal(given.target.knownHostsFile, '/lab/known_hosts');
    assert.deepEqual(given.target.extraKnownHostsFiles, ['/etc/kh-global']);
    const defaults = resolveRoute(host(), { ...opts(home('')), globalKnownHosts: undefined as unknown as string[] });
    assert.deepEqual(defaults.target.extraKnownHostsFiles.slice(-2), ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
  });

  it('StrictHostKeyChecking: no is ignored with a warning, accept-new accepts new keys for that host (never into /dev/null)', () => {
    const h = home(['Host lax', '  StrictHostKeyChecking no', 'Host new', '  StrictHostKeyChecking accept-new', 'Host devnull', '  StrictHostKeyChecking accept-new', '  UserKnownHostsFile /dev/null'].join('\n'));
    const lax = resolveRoute(host({ name: 'lax', address: 'lax' }), opts(h));
    assert.equal(lax.target.acceptNewHostKeys, false);
    assert.match(lax.warnings.join('\n'), /config:2: StrictHostKeyChecking no is ignored for lax: kha-deploy always verifies host keys/);
    assert.equal(resolveRoute(host({ name: 'new', address: 'new' }), opts(h)).target.acceptNewHostKeys, true);
    const dn = resolveRoute(host({ name: 'devnull', address: 'devnull' }), opts(h));
    assert.equal(dn.target.acceptNewHostKeys, false);
    assert.match(dn.warnings.join('\n'), /known_hosts is \/dev\/null for devnull/);
  });

  it("jump hosts: each hop resolved through ssh_config, the first hop's own ProxyJump followed, common args before ssh_config", () => {
    const h = home(
      [
        'Host bastion',
        '  HostName 203.0.113.5',
        '  User ops',
        '  IdentityFile ~/.ssh/ops',
        '  ProxyJump edge',
        'Host edge',
        '  HostName 198.51.100.1',
        '  Port 2222',
        'Host inner',
        '  HostName 10.0.0.2',
        '  ProxyJump ignored-for-a-later-hop',
        'Host 10.0.0.*',
        '  ProxyJump bastion,inner',
      ].join('\n'),
      { ops: 'k' },
    );
    const r = resolveRoute(host({ address: '10.0.0.11', explicit: { address: true, port: false, user: false } }), opts(h));
    assert.deepEqual(
      r.jumps.map((j) => j.label),
      [`${readContext(h).localUser}@198.51.100.1:2222`, 'ops@203.0.113.5:22', `${readContext(h).localUser}@10.0.0.2:22`],
    );
    assert.equal(r.jumps[1]!.privateKeyFile, join(h, '.ssh', 'ops'));
    const fromArgs = resolveRoute(host({ address: '10.0.0.11', explicit: { address: true, port: false, user: false }, sshCommonArgs: '-o ProxyJump=kha@172.16.86.13' }), opts(h));
    assert.deepEqual(fromArgs.jumps.map((j) => j.label), ['kha@172.16.86.13:22']);
    const none = resolveRoute(host({ address: '10.0.0.11', explicit: { address: true, port: false, user: false }, sshCommonArgs: '-o ProxyJump=none' }), opts(h));
    assert.deepEqual(none.jumps, [], 'ProxyJump=none in ansible_ssh_common_args turns the ssh_config jump off');
  });

  it('refusals are exit 2 and name where the text came from: ProxyCommand, a bad Port, loops, the master as its own jump host, unknown tokens', () => {
    const h = home(['Host nc', '  ProxyCommand nc %h %p', 'Host badport', '  Port ssh', 'Host loop1', '  ProxyJump loop2', 'Host loop2', '  ProxyJump loop1', 'Host self', '  ProxyJump self', 'Host tok', '  IdentityFile ~/.ssh/%k'].join('\n'));
    const cfg = join(h, '.ssh', 'config');
    throwsUsage(() => resolveRoute(host({ name: 'nc', address: 'nc' }), opts(h)), new RegExp(`^${cfg}:2: ProxyCommand "nc %h %p" is not supported .*no host was contacted`));
    throwsUsage(() => resolveRoute(host({ name: 'badport', address: 'badport' }), opts(h)), new RegExp(`^${cfg}:4: Port ssh is not a port number`));
    throwsUsage(() => resolveRoute(host({ name: 'loop1', address: 'loop1' }), opts(h)), /ProxyJump loop/);
    throwsUsage(() => resolveRoute(host({ name: 'self', address: 'self' }), opts(h)), /ProxyJump loop|its own jump host/);
    throwsUsage(() => resolveRoute(host({ name: 'tok', address: 'tok' }), opts(h)), new RegExp(`^${cfg}:12: %k in ~/.ssh/%k is not a token`));
    throwsUsage(() => resolveRoute(host({ sshCommonArgs: `-o ProxyCommand="connect-proxy -H proxy:3128 %h %p"` }), opts(h)), /^master1: ansible_ssh_common_args: ProxyCommand "connect-proxy/);
    throwsUsage(() => resolveRoute(host({ sshCommonArgs: `-o ProxyJump="unterminated` }), opts(h)), /^master1: ansible_ssh_common_args: unterminated "/);
  });
});
