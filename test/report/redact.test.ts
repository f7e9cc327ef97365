import assert from 'node:assert/strict';
import { it } from 'node:test';
import { MASK, maskSecrets } from '../../src/report/redact.js';

it('masks keepalived auth_pass values and inventory vrrp_auth_pass values', () => {
  assert.equal(maskSecrets('        auth_pass s3cr3t\n'), `        auth_pass ${MASK}\n`);
  assert.equal(maskSecrets('line 3: vrrp_auth_pass=hunter2 rest'), `line 3: vrrp_auth_pass=${MASK} rest`);
  assert.equal(maskSecrets('-        auth_pass old\n+        auth_pass new\n'), `-        auth_pass ${MASK}\n+        auth_pass ${MASK}\n`);
});

it('masks nothing else: a password of 51 does not hide the VRID 51', () => {
  const text = 'virtual_router_id 51\n    auth_pass 51\npriority 151';
  assert.equal(maskSecrets(text), `virtual_router_id 51\n    auth_pass ${MASK}\npriority 151`);
  assert.equal(maskSecrets('nothing secret here: 51 auth 8443'), 'nothing secret here: 51 auth 8443');
});
