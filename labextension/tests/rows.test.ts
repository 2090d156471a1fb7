import { expect, test } from 'vitest';
import { LINE_PX, logCounts, ROW_CHROME_PX, rowHeight, sessionStrips, timelineRow } from '../src/rows';
import { run, session } from './fixtures';

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

test('the newest run of each session block carries its session strip, one strip taller', () => {
  const clock = (iso: string) => `@${iso}`;
  const first = session('s1', 0);
  first.body.started = 't1';
  const second = session('s2', 10);
  // newest first: s2 ran twice after s1's two runs, then s1's kernel ran once more
  const rows = [
    run({ n: 3, session: 's1', seq: 14 }),
    run({ n: 2, session: 's2', seq: 13 }),
    run({ n: 1, session: 's2', seq: 12 }),
    run({ n: 2, session: 's1', seq: 2 }),
    run({ n: 1, session: 's1', seq: 1 })
  ];
  rows[2].body.started = 't2-oldest';
  const strips = sessionStrips(rows, [first, second], clock);
  expect(strips).toStrictEqual(['session 1 · started @t1', 'session 2 · started @t2-oldest', null, 'session 1 · started @t1', null]);
  const stale = new Map();
  expect(rowHeight(rows[1], stale, strips[1])).toBe(rowHeight(rows[2], stale, strips[2]) + LINE_PX);
  expect(timelineRow(rows[1], stale, strips[1]).session).toBe('session 2 · started @t2-oldest');

  // one session only: no strips; a run whose session entry the log lacks is numbered after
  expect(sessionStrips(rows.slice(3), [first], clock)).toStrictEqual([null, null]);
  expect(sessionStrips([run({ n: 1, session: 'x' }), rows[4]], [first], clock)[0]).toMatch(/^session 2 · started /);
});
