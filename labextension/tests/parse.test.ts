import { expect, test } from 'vitest';
import { parseEntry, parseNotebookMeta, parseStale } from '../src/parse';
import { NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA } from '../src/types';
import { run, session } from './fixtures';

const json = (x: unknown) => JSON.parse(JSON.stringify(x));

test('a well-formed execution entry parses to the same content', () => {
  const raw = json(run({ n: 1, reads: [['a', null]] }));
  const { entry, problem } = parseEntry(raw);
  expect(problem).toBe(null);
  expect(entry).toStrictEqual(raw);
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
    expect(entry).toBe(null);
    expect(problem!).toMatch(reason);
  }
});

test('notebook metadata: foreign schema is flagged, malformed entries counted', () => {
  expect(parseNotebookMeta(undefined, NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA)).toStrictEqual({
    entries: [],
    foreign: false,
    notices: [],
    stale: new Map(),
    sidecar: null
  });
  const foreign = parseNotebookMeta({ schema: 'other/1' }, NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA);
  expect(foreign.foreign).toBe(true);
  expect(foreign.notices[0]).toMatch(/ignored/);
  expect(parseNotebookMeta('text', NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA).foreign).toBe(true);

  const meta = {
    schema: OLD_NOTEBOOK_SCHEMA,
    sessions: [json(session())],
    log: [json(run({ n: 1 })), { seq: 1 }, null]
  };
  const parsed = parseNotebookMeta(meta, NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA);
  expect(parsed.foreign).toBe(false);
  expect(parsed.entries.map(p => p.entry.kind)).toStrictEqual(['session', 'execution']);
  expect(JSON.parse(parsed.entries[1].raw), 'the old entry is kept whole for re-saving').toStrictEqual(meta.log[0]);
  expect(parsed.notices[0]).toMatch(/^2 malformed lineage entries ignored/);
});

test('kernel stale maps keep only lists of strings', () => {
  expect([...parseStale({ a: ['x', 3], b: 'no' })]).toStrictEqual([['a', ['x']]]);
  expect(parseStale(null).size).toBe(0);
});

test('notebook metadata keeps the saved stale flags and the sidecar it names', () => {
  const parsed = parseNotebookMeta(
    { schema: NOTEBOOK_SCHEMA, sidecar: '.nbgov/old.jsonl', log: [], stale: { 's1:2': ['input a deleted by [3]', 7] } },
    NOTEBOOK_SCHEMA,
    OLD_NOTEBOOK_SCHEMA
  );
  expect([...parsed.stale]).toStrictEqual([['s1:2', ['input a deleted by [3]']]]);
  expect(parsed.sidecar).toBe('.nbgov/old.jsonl');
});

test('model roles: read when recorded, inferred from CREATE MODEL in older logs, refused when unknown', () => {
  const raw = json(run({ n: 1 }));
  const body = raw.body as Record<string, unknown>;
  const use = (extra: object) => ({ name: 'churn', version: 2, sha256: 'ab', producer: null, opset: null, source: null, ...extra });
  body.sql = [{ statement: 'CREATE MODEL churn', kind: 'create_model', models: ['churn@2'] }];
  body.models = [use({}), use({ name: 'other', version: 1 }), use({ name: 'x', role: 'input' }),
    use({ name: 'gone', role: 'dropped' })];
  const { entry } = parseEntry(raw);
  expect(entry!.kind).toBe('execution');
  const roles = entry!.kind === 'execution' ? entry!.body.models.map(m => `${m.name}:${m.role}`) : [];
  expect(roles).toStrictEqual(['churn:output', 'other:input', 'x:input', 'gone:dropped']);
  body.models = [use({ role: 'both' })];
  expect(parseEntry(raw).problem).toMatch(/model.role/);
});

test('a removed file is read strictly: true or absent, and only on a write without content', () => {
  const raw = json(run({ n: 1 }));
  const body = raw.body as Record<string, unknown>;
  const parsedFiles = () => {
    const { entry, problem } = parseEntry(raw);
    expect(problem).toBe(null);
    return entry!.kind === 'execution' ? entry!.body.files : [];
  };
  const gone = { path: 'data.csv', abspath: '/w/data.csv', mode: 'write', size: null, hash: null, source: null };
  body.files = [{ ...gone, removed: true }];
  expect(parsedFiles()).toStrictEqual([{ ...gone, removed: true }]);
  body.files = [{ ...gone, size: 3, hash: 'ab' }];
  expect(parsedFiles()[0].removed, 'absent: an ordinary write').toBe(false);

  const refused: [unknown, RegExp][] = [
    ['yes', /file.removed: expected true or absent/],
    [1, /file.removed: expected true or absent/],
    [false, /file.removed: expected true or absent/],
    [null, /file.removed: expected true or absent/]
  ];
  for (const [value, reason] of refused) {
    body.files = [{ ...gone, removed: value }];
    const { entry, problem } = parseEntry(raw);
    expect(entry, `removed: ${JSON.stringify(value)}`).toBe(null);
    expect(problem!).toMatch(reason);
  }
  for (const contradiction of [{ mode: 'read' }, { hash: 'ab' }, { size: 3 }]) {
    body.files = [{ ...gone, ...contradiction, removed: true }];
    expect(parseEntry(raw).problem).toMatch(/a removed file is a write with no size and no hash/);
  }
});

test('a notebook whose log has a bad removed flag reports it like any malformed entry', () => {
  const bad = json(run({ n: 1 }));
  bad.body.files = [{ path: 'a', mode: 'write', size: null, hash: null, removed: 'yes' }];
  const parsed = parseNotebookMeta({ schema: OLD_NOTEBOOK_SCHEMA, log: [bad] }, NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA);
  expect(parsed.entries).toStrictEqual([]);
  expect(parsed.notices).toStrictEqual(['1 malformed lineage entry ignored (first: file.removed: expected true or absent).']);
});
