import { expect, test } from 'vitest';
import { LINE_PX, logCounts, ROW_CHROME_PX, rowHeight, timelineRow } from '../src/rows';
import { run } from './fixtures';

test('a row shows its preview, its error and its stale reason; its height counts the strips', () => {
  const ok = run({ n: 1, code: '%%sqlml\nSELECT 1' });
  const failed = run({ n: 2, code: 'x = 1 / 0', error: ['ZeroDivisionError', 'division by zero\nmore'] });
  const stale = new Map([[ok.body.id, ['input a rewritten by [3]', 'file d.csv changed']]]);

  const a = timelineRow(ok, stale);
  expect(a.preview).toBe('SELECT 1');
  expect(a.sql).toBe(true);
  expect(a.stale).toBe('stale: input a rewritten by [3]; file d.csv changed');
  expect(a.error).toBe(null);
  expect(rowHeight(ok, stale)).toBe(ROW_CHROME_PX + 3 * LINE_PX);

  const b = timelineRow(failed, stale);
  expect(b.ok).toBe(false);
  expect(b.error).toBe('ZeroDivisionError: division by zero');
  expect(b.tooltip).toContain('division by zero\nmore');
  expect(rowHeight(failed, stale)).toBe(ROW_CHROME_PX + 3 * LINE_PX);
  expect(rowHeight(run({ n: 3 }), stale)).toBe(ROW_CHROME_PX + 2 * LINE_PX);
});

test('counts use one wording', () => {
  const runs = [run({ n: 1 }), run({ n: 2, error: ['E', 'm'] })];
  expect(logCounts(runs, 1, 0)).toStrictEqual({
    short: '2 executions · 1 failed',
    long: '3 entries: 1 session, 2 executions · 1 failed'
  });
  expect(logCounts([run({ n: 1 })], 2, 1).long).toBe('3 entries: 2 sessions, 1 execution · 1 stale');
  expect(logCounts([], 0, 0)).toStrictEqual({ short: '0 executions', long: '0 entries' });
  const many = Array.from({ length: 10_000 }, (_, i) => run({ n: i + 1 }));
  expect(logCounts(many, 1, 0).short).toBe('10,000 executions');
});
