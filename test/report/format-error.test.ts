import assert from 'node:assert/strict';
import { it } from 'node:test';
import { HostKeyError, HostStepError, InventoryError, ManyErrors } from '../../src/errors.js';
import { formatError } from '../../src/report/format-error.js';

it('names host, step, what the host showed and what to do', () => {
  const text = formatError(
    new HostStepError('master2', 'packages', 'apt-get install failed (exit 100)', {
      seen: 'E: Unable to locate package keepalived',
      hint: 'check the repositories',
    }),
  );
  assert.match(text, /^error: \[master2\] packages: apt-get install failed \(exit 100\)$/m);
  assert.match(text, /what the host showed:\n {4}E: Unable to locate package keepalived/);
  assert.match(text, /what to do: check the repositories/);
});

it('masks the VRRP password by meaning everywhere in the message, and nothing else', () => {
  const text = formatError(new HostStepError('m1', 'keepalived-config', 'auth_pass s3cr3t! rejected', { seen: 'line 9: auth_pass s3cr3t!\nvirtual_router_id 51' }));
  assert.ok(!text.includes('s3cr3t!'));
  assert.match(text, /auth_pass \*{8}/);
  assert.match(text, /virtual_router_id 51/);
});

it('lists every inventory problem with file:line and variable', () => {
  const text = formatError(
    new InventoryError('/tmp/inv.ini', [
      { line: 3, variable: 'vip_prot', message: 'unknown variable', hint: 'did you mean vip_port?' },
      { message: 'no masters' },
    ]),
  );
  assert.match(text, /has 2 problems \(no host was contacted\)/);
  assert.match(text, /inv\.ini:3: vip_prot: unknown variable\n {4}hint: did you mean vip_port\?/);
});

it('shows both fingerprints for a changed host key', () => {
  const text = formatError(new HostKeyError('m1', 'changed', '172.16.86.11:22', 'SHA256:new', ['SHA256:old'], { hint: 'ssh-keygen -R' }));
  assert.match(text, /HOST KEY CHANGED for 172\.16\.86\.11:22/);
  assert.match(text, /presented: SHA256:new\n {4}known: {5}SHA256:old/);
});

it('reports each of several failing hosts', () => {
  const text = formatError(
    new ManyErrors([new HostStepError('m1', 'connect', 'refused'), new HostStepError('m3', 'connect', 'timed out')], '2 masters failed'),
  );
  assert.match(text, /\[m1\] connect: refused[\s\S]*\[m3\] connect: timed out/);
});
