import { expect, test } from 'vitest';
import { fitAll, initialView, MAX_ZOOM, MIN_FIT_ZOOM, MIN_ZOOM, panBy, READABLE_ZOOM, zoomAt } from '../src/zoom';

const viewport = { width: 240, height: 300 };

test('a small graph is shown whole, centred, never enlarged', () => {
  const v = initialView({ width: 100, height: 120 }, viewport);
  expect(v.k).toBe(1);
  expect(v.x).toBe(70);
});

test('a big graph is fitted whole down to MIN_FIT_ZOOM, else shown readable from the top', () => {
  const fits = initialView({ width: 300, height: 300 }, viewport);
  expect(fits.k).toBeCloseTo(224 / 300);
  expect(300 * fits.k).toBeLessThanOrEqual(240);
  const small = initialView({ width: 500, height: 400 }, viewport);
  expect(small.k).toBeCloseTo(224 / 500);
  expect(small.k).toBeGreaterThanOrEqual(MIN_FIT_ZOOM);
  const tall = initialView({ width: 200, height: 3000 }, viewport);
  expect(tall.k).toBe(1);
  expect(tall.y).toBe(8);
  const wide = initialView({ width: 2000, height: 3000 }, viewport);
  expect(wide.k).toBe(READABLE_ZOOM);
  const focused = initialView({ width: 2000, height: 3000 }, viewport, { x: 1000, y: 1500 });
  expect(focused.x + 1000 * focused.k).toBeCloseTo(120);
  expect(focused.y + 1500 * focused.k).toBeCloseTo(150);
  expect(fitAll({ width: 2000, height: 3000 }, viewport).k).toBe(MIN_ZOOM);
  expect(fitAll({ width: 900, height: 1200 }, viewport).k).toBeCloseTo(284 / 1200);
});

test('zooming keeps the point under the pointer still, within limits; panning adds', () => {
  const v = zoomAt({ x: 10, y: 20, k: 1 }, 2, 110, 120);
  expect(v.k).toBe(2);
  // content point under (110, 120) was (100, 100); it still is
  expect((110 - v.x) / v.k).toBeCloseTo(100);
  expect((120 - v.y) / v.k).toBeCloseTo(100);
  expect(zoomAt({ x: 0, y: 0, k: 1 }, 100, 0, 0).k).toBe(MAX_ZOOM);
  expect(zoomAt({ x: 0, y: 0, k: 1 }, 0.0001, 0, 0).k).toBe(MIN_ZOOM);
  expect(panBy({ x: 1, y: 2, k: 3 }, 10, -5)).toStrictEqual({ x: 11, y: -3, k: 3 });
});
