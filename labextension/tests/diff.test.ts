import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lineDiff } from '../src/diff';

test('unchanged lines are kept, edits show as - then +', () => {
  assert.deepEqual(lineDiff('a\nb\nc', 'a\nB\nc'), [
    { op: ' ', text: 'a' },
    { op: '-', text: 'b' },
    { op: '+', text: 'B' },
    { op: ' ', text: 'c' }
  ]);
});

test('insertions and deletions at the ends', () => {
  assert.deepEqual(lineDiff('x', 'x\ny').map(l => l.op), [' ', '+']);
  assert.deepEqual(lineDiff('w\nx', 'x').map(l => l.op), ['-', ' ']);
});

test('identical code has no changes', () => {
  assert.ok(lineDiff('p\nq', 'p\nq').every(l => l.op === ' '));
});
