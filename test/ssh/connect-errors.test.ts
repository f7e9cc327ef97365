import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectError } from '../../src/errors.js';
import { networkError, sshError, type ConnectContext } from '../../src/ssh/connect-errors.js';

const ctx: ConnectContext = {
  host: 'cp-a',
  user: 'deploy',
  address: 'cp-a.lab',
  port: 2222,
  target: 'deploy@cp-a.lab:2222',
  tried: ['key /k/id_ed25519'],
  knownHostsFile: '/kh',
};
const errno = (code: string) => Object.assign(new Error(`${code} boom`), { code });

describe('connect errors', () => {
  it('name the target, the cause and what to check', () => {
    const t = networkError(ctx, errno('ETIMEDOUT'), 10_000);
    assert.ok(t instanceof ConnectError);
    assert.equal(t.host, 'cp-a');
    assert.equal(t.step, 'connect');
    assert.equal(t.message, 'cannot connect to deploy@cp-a.lab:2222: no answer within 10 s');
    assert.match(t.hint ?? '', /sshd running/);
    assert.match(networkError(ctx, errno('EHOSTUNREACH')).message, /host unreachable/);
    assert.match(networkError(ctx, errno('ENOTFOUND')).hint ?? '', /ansible_host/);
    assert.match(networkError(ctx, errno('EWHATEVER')).message, /EWHATEVER boom/);
  });

  it('map ssh2 levels', () => {
    const auth = sshError(ctx, Object.assign(new Error('All configured authentication methods failed'), { level: 'client-authentication' }), 20_000);
    assert.equal(auth.message, 'authentication failed for deploy@cp-a.lab:2222 (tried: key /k/id_ed25519)');
    assert.match(auth.hint ?? '', /~deploy\/\.ssh\/authorized_keys/);
    const ka = sshError(ctx, Object.assign(new Error('Keepalive timeout'), { level: 'client-timeout' }), 20_000);
    assert.match(ka.message, /stopped answering/);
    const hs = sshError(ctx, Object.assign(new Error('Timed out while waiting for handshake'), { level: 'client-timeout' }), 20_000);
    assert.match(hs.message, /no SSH handshake within 20 s/);
    const sock = sshError(ctx, Object.assign(errno('ECONNRESET'), { level: 'client-socket' }), 20_000);
    assert.match(sock.message, /connection reset/);
  });
});
