// The playbook: the packaged file loads as documented; broken playbooks fail before any host is touched.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { UsageError } from '../src/errors.js';
import { defaultPlaybookPath, loadPlaybook, packageRoot, parsePlaybook } from '../src/playbook.js';

const root = fileURLToPath(new URL('..', import.meta.url)).replace(/\/$/, '');
const dir = join(root, 'playbooks');
const text = readFileSync(join(dir, 'master-ha.yml'), 'utf8');

describe('the packaged playbook', () => {
  const pb = loadPlaybook();

  it('is found from the package root', () => {
    assert.equal(packageRoot(), root);
    assert.equal(defaultPlaybookPath(), join(root, 'playbooks', 'master-ha.yml'));
    assert.equal(pb.file, join(root, 'playbooks', 'master-ha.yml'));
  });

  it('declares the steps, packages, run dir and backups', () => {
    assert.equal(pb.name, 'master-ha');
    assert.deepEqual(pb.steps.map((s) => s.id), ['packages', 'rundir', 'haproxy-config', 'keepalived-config', 'units']);
    assert.deepEqual(pb.packages, { keepalived: 'keepalived', haproxy: 'haproxy', curl: 'curl' });
    assert.equal(pb.runDir, '/run/haproxy');
    assert.equal(pb.backups, 5);
  });

  it('declares the managed files with their validators', () => {
    const strip = (f: (typeof pb.files)['haproxy']) => ({ ...f, templateText: f.templateText.length > 0 });
    assert.deepEqual(strip(pb.files.haproxy), {
      path: '/etc/haproxy/haproxy.cfg',
      template: 'templates/haproxy.cfg.tmpl',
      templateText: true,
      mode: '0644',
      validate: 'haproxy -c -f {file}',
    });
    assert.deepEqual(strip(pb.files.keepalived), {
      path: '/etc/keepalived/keepalived.conf',
      template: 'templates/keepalived.conf.tmpl',
      templateText: true,
      mode: '0600',
      validate: 'if keepalived --help 2>&1 | grep -q -e --config-test; then keepalived --config-test --use-file={file}; fi',
    });
    assert.deepEqual(strip(pb.files.tmpfiles), {
      path: '/etc/tmpfiles.d/kha-deploy-haproxy.conf',
      template: 'templates/kha-deploy-haproxy.tmpfiles.tmpl',
      templateText: true,
      mode: '0644',
    });
    assert.doesNotMatch(pb.files.keepalived.validate!, /--config-test=/, '--config-test=FILE names a log file');
  });

  it('gives every step a deadline, from the YAML', () => {
    assert.deepEqual(
      pb.steps.map((st) => [st.id, st.timeoutSeconds]),
      [['packages', 600], ['rundir', 30], ['haproxy-config', 60], ['keepalived-config', 60], ['units', 120]],
    );
  });

  it('reads every key it offers: changing any value changes the result or is refused', () => {
    const doc = parseYaml(text) as Record<string, unknown>;
    const paths: (string | number)[][] = [];
    const walk = (v: unknown, at: (string | number)[]) => {
      if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, [...at, Array.isArray(v) ? Number(k) : k]);
      else paths.push(at);
    };
    walk(doc, []);
    assert.ok(paths.length > 20, `walked ${paths.length} leaves`);
    const baseline = JSON.stringify(parsePlaybook(text, dir, join(dir, 'master-ha.yml')));
    for (const path of paths) {
      const copy = parseYaml(text) as Record<string, unknown>;
      let node: any = copy;
      for (const k of path.slice(0, -1)) node = node[k];
      const last = path[path.length - 1]!;
      const v = node[last];
      node[last] = typeof v === 'number' ? v + 1 : typeof v === 'string' ? `${v}x` : !v;
      let after: string | undefined;
      try {
        after = JSON.stringify(parsePlaybook(stringifyYaml(copy), dir, join(dir, 'master-ha.yml')));
      } catch {
        continue; // refused: the key is required
      }
      assert.notEqual(after, baseline, `playbook key ${path.join('.')} is offered but changing it changes nothing`);
    }
  });

  it('declares the gates per role', () => {
    assert.deepEqual(pb.gates, {
      primary: { timeoutSeconds: 90, intervalSeconds: 0.5 },
      backup: { timeoutSeconds: 60, intervalSeconds: 1 },
      final: { timeoutSeconds: 60, intervalSeconds: 1 },
    });
  });
});

describe('parsePlaybook refuses', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'kha-pb-'));
  cpSync(join(dir, 'templates'), join(scratch, 'templates'), { recursive: true });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  const parse = (t: string) => parsePlaybook(t, scratch, join(scratch, 'pb.yml'));
  const edit = (from: string | RegExp, to: string) => {
    const out = text.replace(from, to);
    assert.notEqual(out, text, `edit ${String(from)} did not apply`);
    return out;
  };
  const refuses = (t: string, re: RegExp) =>
    assert.throws(
      () => parse(t),
      (err: Error) => err instanceof UsageError && err.message.startsWith(`playbook ${join(scratch, 'pb.yml')}: `) && re.test(err.message),
    );

  it('accepts the packaged text from another directory', () => {
    assert.equal(parse(text).steps.length, 5);
  });

  it('YAML syntax errors', () => refuses('name: [x\n', /YAML: /));
  it('unknown keys (typos)', () => refuses(edit('    timeout_seconds: 90', '    timout_seconds: 90\n    timeout_seconds: 90'), /gates\.primary: unknown key 'timout_seconds'/));
  it('a missing step', () => refuses(edit(/  - id: rundir\n(?:    .*\n)+/, ''), /step 'rundir' must appear exactly once \(found 0\)/));
  it('an unknown step', () => refuses(edit('  - id: units', '  - id: reboot'), /steps\[4\]\.id: must be one of packages, rundir/));
  it('units before a config step', () =>
    refuses(
      edit(/(  - id: keepalived-config\n(?:    .*\n)+)(  - id: units\n(?:    .*\n)+)/, '$2$1'),
      /'keepalived-config' must come before 'units'/,
    ));
  it('an unquoted mode', () => refuses(edit('mode: "0600"', 'mode: 0600'), /files\.keepalived\.mode: must be a non-empty string/));
  it('a validator without {file}', () => refuses(edit('haproxy -c -f {file}', 'haproxy -c -f /etc/haproxy/haproxy.cfg'), /files\.haproxy\.validate: must contain \{file\}/));
  it('a relative managed path', () => refuses(edit('path: /etc/haproxy/haproxy.cfg', 'path: haproxy.cfg'), /files\.haproxy\.path: 'haproxy\.cfg' is not an absolute path/));
  it('a missing template file', () => refuses(edit('template: templates/haproxy.cfg.tmpl', 'template: templates/nope.tmpl'), /files\.haproxy\.template: cannot read .*nope\.tmpl/));
  it('an interval longer than the timeout', () => refuses(edit('    interval_seconds: 0.5\n  backup:', '    interval_seconds: 200\n  backup:'), /gates\.primary: interval_seconds is longer than timeout_seconds/));
  it('a gate check list (what a gate checks is fixed by its role, so the playbook does not offer it)', () =>
    refuses(edit('  primary:\n', '  primary:\n    checks: [vip-on-primary]\n'), /gates\.primary: unknown key 'checks'/));
  it('packages anywhere but first (the runner installs on every master before the per-master steps)', () =>
    refuses(edit(/(  - id: packages\n(?:    .*\n)+)(  - id: rundir\n(?:    .*\n)+)/, '$2$1'), /'packages' must be the first step/));
  it('a step deadline out of range', () => refuses(edit('    timeout_seconds: 600', '    timeout_seconds: 0'), /steps\[0\]\.timeout_seconds: must be a number from 1 to 7200/));
  it('a negative backups count', () => refuses(edit('backups: 5', 'backups: -1'), /backups: must be an integer from 0 to 100/));
  it('a package name with shell syntax', () => refuses(edit('haproxy: haproxy\n', 'haproxy: "haproxy; reboot"\n'), /packages\.haproxy: 'haproxy; reboot' is not a package name/));

  it('an unknown placeholder in a template, even inside a block the sample skips', () => {
    const tmpl = join(scratch, 'templates', 'haproxy.cfg.tmpl');
    const orig = readFileSync(tmpl, 'utf8');
    try {
      writeFileSync(tmpl, orig.replace('    bind :::{{ vip_port }} v4v6', '    bind :::{{ vip_prot }} v4v6'));
      refuses(text, /files\.haproxy\.template: template templates\/haproxy\.cfg\.tmpl line \d+: unknown placeholder \{\{ vip_prot \}\}/);
    } finally {
      writeFileSync(tmpl, orig);
    }
  });

  it('loadPlaybook names an unreadable file', () => {
    assert.throws(() => loadPlaybook(join(scratch, 'missing.yml')), (err: Error) => err instanceof UsageError && /cannot read playbook .*missing\.yml/.test(err.message));
  });
});
