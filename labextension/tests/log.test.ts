import { expect, test } from 'vitest';
import { LineageLog, shortHash, sidecarFor, staleToShow } from '../src/log';
import { model, run, session } from './fixtures';

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

test('the kernel answer is shown when there is one, else the flags saved in the notebook', () => {
  const saved = new Map([['s1:2', ['input a rewritten by [3]']]]);
  const kernel = new Map([['s1:4', ['file x.csv changed on disk since read']]]);
  expect(staleToShow(kernel, saved)).toBe(kernel);
  expect(staleToShow(null, saved)).toBe(saved);
  expect(staleToShow(new Map(), saved).size).toBe(0); // the kernel says nothing is stale now
});

test('ancestors follow the models a run scored, not the ones it registered', () => {
  const log = new LineageLog();
  const creator = run({ n: 1 });
  creator.body.models = [model('churn', 1, 'output', null)];
  const scorer = run({ n: 2 });
  scorer.body.models = [model('churn', 1, 'input', 's1:1')];
  const again = run({ n: 3 });
  again.body.models = [model('churn', 2, 'output', 's1:2')];
  log.merge([creator, scorer, again]);
  expect([...log.ancestors('s1:2')]).toStrictEqual(['s1:1']);
  expect([...log.ancestors('s1:3')]).toStrictEqual([]);
});

test('display helpers', () => {
  expect(shortHash('0123456789abcdef')).toBe('01234567');
  expect(shortHash(null)).toBe('—');
  expect(sidecarFor('dir/my analysis.ipynb')).toBe('.nbgov/my analysis.jsonl');
});
