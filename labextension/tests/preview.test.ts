import { expect, test } from 'vitest';
import { clipWords, codePreview, fitMiddle, fitText, isSqlCell, shortLabel } from '../src/preview';

test('a %%sqlml cell previews its first SQL line', () => {
  expect(codePreview('%%sqlml\nSELECT plan, count(*)\nFROM customers')).toBe('SELECT plan, count(*)');
  expect(codePreview('\n  %%sqlml -o by_plan --limit 5\n\n   CREATE MODEL churn FROM $clf;')).toBe('CREATE MODEL churn FROM $clf;');
  expect(codePreview('%%sqlml')).toBe('%%sqlml');
  expect(codePreview('%%sqlmlish\nSELECT 1')).toBe('%%sqlmlish');
  expect(codePreview('\n\nx = 1\ny = 2')).toBe('x = 1');
  expect(codePreview('')).toBe('');
  expect(isSqlCell('%%sqlml --explain\nSELECT 1')).toBe(true);
  expect(isSqlCell('x = 1')).toBe(false);
});

test('text is cut at word boundaries, with an ellipsis only when cut', () => {
  expect(clipWords('SELECT plan, count(*) AS customers', 20)).toBe('SELECT plan,…');
  expect(clipWords('short', 20)).toBe('short');
  expect(clipWords('pandas.DataFrame.very_long_name', 12)).toBe('pandas.Data…');
  expect(shortLabel(7, '%%sqlml\nSELECT plan FROM customers', 20)).toBe('[7] SELECT plan…');
  expect(shortLabel(null, 'x = 1')).toBe('[?] x = 1');
});

test('fitText keeps the longest word-boundary prefix that fits the measured width', () => {
  const measure = (s: string) => s.length * 10;
  expect(fitText('a = 1', 100, measure)).toBe('a = 1');
  const fitted = fitText('SELECT id, predict(churn, *) FROM customers', 150, measure);
  expect(measure(fitted)).toBeLessThanOrEqual(150);
  expect(fitted).toBe('SELECT id,…');
  expect(fitText('averyveryverylongidentifier', 80, measure)).toBe('averyve…');
});

test('fitMiddle keeps a name\'s start and end, so names that differ at the end stay apart', () => {
  const measure = (s: string): number => s.length * 10;
  expect(fitMiddle('seed', 100, measure)).toBe('seed');
  const train = fitMiddle('features_scaled_train', 120, measure);
  const test_ = fitMiddle('features_scaled_test', 120, measure);
  expect([train, test_]).toStrictEqual(['featur…train', 'featur…_test']);
  expect(measure(train)).toBeLessThanOrEqual(120);
  expect(fitMiddle('$NBGOV_DEMO_API_TOKEN', 130, measure)).toBe('$NBGOV…_TOKEN');
  expect(fitMiddle('abcdef', 10, measure)).toBe('a…');
});
