import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseEntry, parseNotebookMeta, parseStale } from '../src/parse';
import { NOTEBOOK_SCHEMA } from '../src/types';
import { run, session } from './fixtures';

const json = (x: unknown) => JSON.parse(JSON.stringify(x));

test('a well-formed execution entry parses to the same content', () => {
  const raw = json(run({ n: 1, reads: [['a', null]] }));
  const { entry, problem } = parseEntry(raw);
  assert.equal(problem, null);
  assert.deepEqual(entry, raw);
});

test('malformed entries are rejected with a reason, never half-accepted', () => {
  const good = json(run({ n: 1 }));
  const cases: [unknown, RegExp][] = [
    [42, /entry: expected an object/],
    [{ ...good, seq: 'one' }, /seq/],
    [{ ...good, kind: 'other' }, /kind/],
    [{ ...good, body: { ...good.body, code: 7 } }, /code/],
    [{ ...good, body: { ...good.body, reads: [{ name: 1 }] } }, /read.name/],
    [{ ...good, body: { ...good.body, writes: 'x' } }, /writes: expected a list/]
  ];
  for (const [raw, reason] of cases) {
    const { entry, problem } = parseEntry(raw);
    assert.equal(entry, null);
    assert.match(problem!, reason);
  }
});

test('notebook metadata: foreign schema is flagged, malformed entries counted', () => {
  assert.deepEqual(parseNotebookMeta(undefined, NOTEBOOK_SCHEMA), { entries: [], foreign: false, notices: [] });
  const foreign = parseNotebookMeta({ schema: 'other/1' }, NOTEBOOK_SCHEMA);
  assert.equal(foreign.foreign, true);
  assert.match(foreign.notices[0], /ignored/);
  assert.equal(parseNotebookMeta('text', NOTEBOOK_SCHEMA).foreign, true);

  const meta = {
    schema: NOTEBOOK_SCHEMA,
    sessions: [json(session())],
    log: [json(run({ n: 1 })), { seq: 1 }, null]
  };
  const parsed = parseNotebookMeta(meta, NOTEBOOK_SCHEMA);
  assert.equal(parsed.foreign, false);
  assert.deepEqual(parsed.entries.map(p => p.entry.kind), ['session', 'execution']);
  assert.equal(parsed.entries[1].raw, meta.log[0], 'the raw JSON is kept for re-saving');
  assert.match(parsed.notices[0], /^2 malformed lineage entries ignored/);
});

test('kernel stale maps keep only lists of strings', () => {
  assert.deepEqual([...parseStale({ a: ['x', 3], b: 'no' })], [['a', ['x']]]);
  assert.equal(parseStale(null).size, 0);
});
