import assert from 'node:assert/strict';
import { it } from 'node:test';
import { redact } from '../../src/report/redact.js';

it('masks every occurrence of each non-empty secret', () => {
  assert.equal(redact('pw=abc abc', ['abc', undefined, '']), 'pw=******** ********');
  assert.equal(redact('nothing secret', ['abc']), 'nothing secret');
});
