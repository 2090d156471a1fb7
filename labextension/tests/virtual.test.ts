import { expect, test } from 'vitest';
import { VirtualLayout } from '../src/virtual';

test('offsets are prefix sums and the viewport shows only intersecting rows', () => {
  const layout = new VirtualLayout([10, 20, 30, 40]);
  expect(layout.total).toBe(100);
  expect([0, 1, 2, 3].map(i => layout.offset(i))).toStrictEqual([0, 10, 30, 60]);
  expect(layout.height(2)).toBe(30);
  expect(layout.indexAt(0)).toBe(0);
  expect(layout.indexAt(29.9)).toBe(1);
  expect(layout.indexAt(30)).toBe(2);
  expect(layout.indexAt(1000)).toBe(3);
  expect(layout.range(0, 25)).toStrictEqual({ start: 0, end: 2 });
  expect(layout.range(30, 30)).toStrictEqual({ start: 2, end: 3 });
  expect(layout.range(30, 30, 5)).toStrictEqual({ start: 1, end: 4 });
  expect(new VirtualLayout([]).range(0, 100)).toStrictEqual({ start: 0, end: 0 });
});

test('ten thousand rows: a viewport holds a few dozen', () => {
  const heights = Array.from({ length: 10_000 }, (_, i) => (i % 7 === 0 ? 61 : 43));
  const layout = new VirtualLayout(heights);
  const { start, end } = layout.range(layout.offset(5000), 600, 240);
  expect(start).toBeLessThanOrEqual(5000);
  expect(end - start).toBeLessThan(30);
  expect(layout.offset(start)).toBeLessThanOrEqual(layout.offset(5000) - 240 + 61);
  expect(layout.offset(end - 1) + layout.height(end - 1)).toBeGreaterThanOrEqual(layout.offset(5000) + 600 + 240);
});

test('scrollToShow moves the least needed to show a row', () => {
  const layout = new VirtualLayout([50, 50, 50, 50, 50]);
  expect(layout.scrollToShow(0, 100, 100)).toBe(0);
  expect(layout.scrollToShow(2, 100, 100)).toBe(100);
  expect(layout.scrollToShow(4, 0, 100)).toBe(150);
});
