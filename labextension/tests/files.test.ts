import { expect, test } from 'vitest';
import { fileItem } from '../src/files';
import { file, removedFile } from './fixtures';

test('a written file shows its hash and size; a removed one says it was removed, with no empty hash', () => {
  expect(fileItem(file('data.csv', 'write', { size: 1234, hash: '0123456789abcdef' }))).toStrictEqual({
    name: 'data.csv',
    aside: 'write',
    sub: '01234567 · 1,234 B · /work/data.csv',
    removed: false
  });
  const gone = fileItem(removedFile('data.csv'));
  expect(gone).toStrictEqual({
    name: 'data.csv',
    aside: 'removed',
    sub: 'removed or renamed away · /work/data.csv',
    removed: true
  });
  expect(gone.sub).not.toContain('—');
});

test('a write whose hash is missing for another reason is still a write, not a removal', () => {
  const item = fileItem(file('big.bin', 'write', { size: null, hash: null }));
  expect(item.aside).toBe('write');
  expect(item.removed).toBe(false);
  expect(item.sub).toBe('— · /work/big.bin');
});
