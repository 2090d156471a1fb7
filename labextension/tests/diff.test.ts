import { expect, test } from 'vitest';
import { lineDiff } from '../src/diff';

test('unchanged lines are kept, edits show as - then +', () => {
  expect(lineDiff('a\nb\nc', 'a\nB\nc')).toStrictEqual([
    { op: ' ', text: 'a' },
    { op: '-', text: 'b' },
    { op: '+', text: 'B' },
    { op: ' ', text: 'c' }
  ]);
});

test('insertions and deletions at the ends', () => {
  expect(lineDiff('x', 'x\ny').map(l => l.op)).toStrictEqual([' ', '+']);
  expect(lineDiff('w\nx', 'x').map(l => l.op)).toStrictEqual(['-', ' ']);
});

test('identical code has no changes', () => {
  expect(lineDiff('p\nq', 'p\nq').every(l => l.op === ' ')).toBe(true);
});
