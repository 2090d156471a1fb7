import { expect, test } from 'vitest';
import { cellReference, expandLines, isOwnCellMeta } from '../src/compact';
import { parseNotebookMeta } from '../src/parse';
import { NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA } from '../src/types';
// lines built by the kernel's Compactor (nbgov/lineage/compact.py) for these entries
import fixture from './compact_fixture.json';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** The sidebar cannot hash (xxh3): a code hash it derives reads as empty. */
const withoutDerivedCodeHash = (entry: Json) =>
  entry.kind === 'execution' ? { ...entry, body: { ...entry.body, code_hash: '' } } : entry;

test('compact lines from the kernel expand to the entries they stand for', () => {
  const shuffled = [...fixture.lines].reverse();
  const { expanded, bad } = expandLines(shuffled);
  expect(bad).toBe(0);
  expect(expanded.map(e => e.entry)).toStrictEqual(fixture.entries.map(withoutDerivedCodeHash));
  expect(expanded.map(e => e.line), 'lines are kept as stored, for re-saving').toStrictEqual(fixture.lines);
});

test('a line whose earlier entry is missing, or that is not a line, is counted, not guessed', () => {
  const { expanded, bad, firstProblem } = expandLines([fixture.lines[0], fixture.lines[2], 'junk', 7]);
  expect(expanded.map(e => (e.entry as Json).seq)).toStrictEqual([0]);
  expect(bad).toBe(3);
  expect(firstProblem).toMatch(/not a compact entry line|refers to entry 1/);
});

test('notebook metadata in the compact form and in the old form read alike', () => {
  const compact = parseNotebookMeta({ schema: NOTEBOOK_SCHEMA, log: fixture.lines, sidecar: '.nbgov/a.jsonl' },
    NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA);
  const old = parseNotebookMeta(
    { schema: OLD_NOTEBOOK_SCHEMA, sessions: [fixture.entries[0]], log: fixture.entries.slice(1) },
    NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA);
  expect(compact.foreign).toBe(false);
  expect(old.foreign).toBe(false);
  expect(compact.entries.map(p => p.entry.hash)).toStrictEqual(old.entries.map(p => p.entry.hash));
  expect(compact.entries.map(p => p.entry.body.session)).toStrictEqual(old.entries.map(p => p.entry.body.session));
  expect(JSON.parse(old.entries[1].raw), 'an old entry is re-saved whole').toStrictEqual(fixture.entries[1]);
});

test('cells name their latest entry by a hash prefix; foreign cell metadata is left alone', () => {
  expect(cellReference('0123456789abcdef0123456789abcdef')).toStrictEqual({ latest: '0123456789abcdef' });
  expect(isOwnCellMeta(undefined)).toBe(true);
  expect(isOwnCellMeta({ latest: '0123456789abcdef' })).toBe(true);
  expect(isOwnCellMeta({ schema: 'nbgov.cell/1', latest: {} })).toBe(true);
  expect(isOwnCellMeta({ schema: 'someone-else/1', latest: 'x' })).toBe(false);
  expect(isOwnCellMeta(null)).toBe(false);
});
