import { expect, test } from 'vitest';
import { LineageLog, mergeStale, shortHash, sidecarFor } from '../src/log';
import { run, session } from './fixtures';

test('merge drops entries already seen (by hash) and reports only new ones', () => {
  const log = new LineageLog();
  const s = session();
  const a = run({ n: 1 });
  const b = run({ n: 2 });
  expect(log.merge([s, a]).length).toBe(2);
  expect(log.merge([a, b, b])).toStrictEqual([b]);
  expect(log.size).toBe(2);
  expect(log.sessions.length).toBe(1);
});

test('entries that arrive out of order are kept in session then sequence order', () => {
  const log = new LineageLog();
  const late = run({ n: 3, seq: 3 });
  log.merge([late]);
  log.merge([run({ n: 1, seq: 1 }), run({ n: 2, seq: 2 })]);
  log.merge([run({ n: 1, seq: 1, session: 's2' })]);
  expect(log.executions.map(e => e.body.id)).toStrictEqual(['s1:1', 's1:2', 's1:3', 's2:1']);
});

test('latest run per cell', () => {
  const log = new LineageLog();
  const first = run({ n: 1, cell: 'A' });
  const second = run({ n: 2, cell: 'A' });
  const other = run({ n: 3, cell: 'B' });
  log.merge([first, second, other]);
  expect(log.latestByCell().get('A')).toBe(second);
  expect(log.currentExecutions()).toStrictEqual([second, other]);
});

test('a run is stale when an input it read is rewritten with other content', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, cell: 'A', writes: [['a', 'v1']] }),
    run({ n: 2, cell: 'B', reads: [['a', 's1:1', 'v1']], writes: [['b', 'w1']] }),
    run({ n: 3, cell: 'A', writes: [['a', 'v2']] })
  ]);
  expect([...log.staleFromLog()]).toStrictEqual([['s1:2', ['input a rewritten by [3]']]]);
});

test('rewriting an input with identical content does not make a run stale', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, cell: 'A', writes: [['a', 'v1']] }),
    run({ n: 2, cell: 'B', reads: [['a', 's1:1', 'v1']] }),
    run({ n: 3, cell: 'A', writes: [['a', 'v1']] })
  ]);
  expect(log.staleFromLog().size).toBe(0);
});

test('deleting an input makes its readers stale; superseded runs are not flagged', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, cell: 'A', writes: [['a', 'v1']] }),
    run({ n: 2, cell: 'B', reads: [['a', 's1:1', 'v1']] }),
    run({ n: 3, cell: 'B', reads: [['a', 's1:1', 'v1']] }),
    run({ n: 4, cell: 'C', deletes: ['a'] })
  ]);
  expect([...log.staleFromLog().keys()]).toStrictEqual(['s1:3']);
  expect(log.staleFromLog().get('s1:3')![0]).toMatch(/deleted by \[4\]/);
});

test('ancestors follow read sources transitively, nearest first', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, writes: [['a']] }),
    run({ n: 2, reads: [['a', 's1:1']], writes: [['b']] }),
    run({ n: 3, writes: [['z']] }),
    run({ n: 4, reads: [['b', 's1:2'], ['z', null]] })
  ]);
  expect([...log.ancestors('s1:4')]).toStrictEqual(['s1:2', 's1:1']);
  expect([...log.ancestors('s1:1')]).toStrictEqual([]);
});

test('stale maps merge without repeating a reason', () => {
  const merged = mergeStale(new Map([['x', ['r1']]]), new Map([['x', ['r1', 'r2']], ['y', ['r3']]]));
  expect([...merged]).toStrictEqual([['x', ['r1', 'r2']], ['y', ['r3']]]);
});

test('display helpers', () => {
  expect(shortHash('0123456789abcdef')).toBe('01234567');
  expect(shortHash(null)).toBe('—');
  expect(sidecarFor('dir/my analysis.ipynb')).toBe('.nbgov/my analysis.jsonl');
});
