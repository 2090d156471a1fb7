import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineageLog, mergeStale, shortHash, sidecarFor } from '../src/log';
import { run, session } from './fixtures';

test('merge drops entries already seen (by hash) and reports only new ones', () => {
  const log = new LineageLog();
  const s = session();
  const a = run({ n: 1 });
  const b = run({ n: 2 });
  assert.equal(log.merge([s, a]).length, 2);
  assert.deepEqual(log.merge([a, b, b]), [b]);
  assert.equal(log.size, 2);
  assert.equal(log.sessions.length, 1);
});

test('entries that arrive out of order are kept in session then sequence order', () => {
  const log = new LineageLog();
  const late = run({ n: 3, seq: 3 });
  log.merge([late]);
  log.merge([run({ n: 1, seq: 1 }), run({ n: 2, seq: 2 })]);
  log.merge([run({ n: 1, seq: 1, session: 's2' })]);
  assert.deepEqual(
    log.executions.map(e => e.body.id),
    ['s1:1', 's1:2', 's1:3', 's2:1']
  );
});

test('latest run per cell', () => {
  const log = new LineageLog();
  const first = run({ n: 1, cell: 'A' });
  const second = run({ n: 2, cell: 'A' });
  const other = run({ n: 3, cell: 'B' });
  log.merge([first, second, other]);
  assert.equal(log.latestByCell().get('A'), second);
  assert.deepEqual(log.currentExecutions(), [second, other]);
});

test('a run is stale when an input it read is rewritten with other content', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, cell: 'A', writes: [['a', 'v1']] }),
    run({ n: 2, cell: 'B', reads: [['a', 's1:1', 'v1']], writes: [['b', 'w1']] }),
    run({ n: 3, cell: 'A', writes: [['a', 'v2']] })
  ]);
  assert.deepEqual([...log.staleFromLog()], [['s1:2', ['input a rewritten by [3]']]]);
});

test('rewriting an input with identical content does not make a run stale', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, cell: 'A', writes: [['a', 'v1']] }),
    run({ n: 2, cell: 'B', reads: [['a', 's1:1', 'v1']] }),
    run({ n: 3, cell: 'A', writes: [['a', 'v1']] })
  ]);
  assert.equal(log.staleFromLog().size, 0);
});

test('deleting an input makes its readers stale; superseded runs are not flagged', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, cell: 'A', writes: [['a', 'v1']] }),
    run({ n: 2, cell: 'B', reads: [['a', 's1:1', 'v1']] }),
    run({ n: 3, cell: 'B', reads: [['a', 's1:1', 'v1']] }),
    run({ n: 4, cell: 'C', deletes: ['a'] })
  ]);
  assert.deepEqual([...log.staleFromLog().keys()], ['s1:3']);
  assert.match(log.staleFromLog().get('s1:3')![0], /deleted by \[4\]/);
});

test('ancestors follow read sources transitively, nearest first', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, writes: [['a']] }),
    run({ n: 2, reads: [['a', 's1:1']], writes: [['b']] }),
    run({ n: 3, writes: [['z']] }),
    run({ n: 4, reads: [['b', 's1:2'], ['z', null]] })
  ]);
  assert.deepEqual([...log.ancestors('s1:4')], ['s1:2', 's1:1']);
  assert.deepEqual([...log.ancestors('s1:1')], []);
});

test('stale maps merge without repeating a reason', () => {
  const merged = mergeStale(new Map([['x', ['r1']]]), new Map([['x', ['r1', 'r2']], ['y', ['r3']]]));
  assert.deepEqual([...merged], [['x', ['r1', 'r2']], ['y', ['r3']]]);
});

test('display helpers', () => {
  assert.equal(shortHash('0123456789abcdef'), '01234567');
  assert.equal(shortHash(null), '—');
  assert.equal(sidecarFor('dir/my analysis.ipynb'), '.nbgov/my analysis.jsonl');
});
