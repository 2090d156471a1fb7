import { expect, test } from 'vitest';
import { buildGraph, environmentVariable, GraphOptions, LABEL_CHARS } from '../src/graphdata';
import { LineageLog } from '../src/log';
import { file, removedFile, run } from './fixtures';

const options = (selected: string | null, maxNodes?: number): GraphOptions => ({
  selected,
  stale: new Map(),
  cellOf: () => 'cell ?',
  maxNodes
});

function chainLog(n: number): LineageLog {
  const log = new LineageLog();
  const entries = [];
  for (let i = 1; i <= n; i++) {
    entries.push(run({ n: i, reads: i > 1 ? [[`v${i - 1}`, `s1:${i - 1}`]] : [], writes: [[`v${i}`]] }));
  }
  log.merge(entries);
  return log;
}

test('cells and variables are nodes; writes and reads are edges; ancestors highlighted', () => {
  const log = chainLog(3);
  const g = buildGraph(log, options('s1:2'));
  expect(g.nodes.map(n => n.label).sort()).toStrictEqual(['[1] # 1', '[2] # 2', '[3] # 3', 'v1', 'v2', 'v3']);
  const edges = g.edges.map(e => `${e.from}>${e.to}${e.highlighted ? '*' : ''}`).sort();
  expect(edges).toStrictEqual([
    'v:v1>x:s1:2*',
    'v:v2>x:s1:3',
    'x:s1:1>v:v1*',
    'x:s1:2>v:v2',
    'x:s1:3>v:v3'
  ]);
  const lit = g.nodes.filter(n => n.highlighted).map(n => n.label).sort();
  expect(lit).toStrictEqual(['[1] # 1', '[2] # 2', 'v1']);
  expect(g.nodes.find(n => n.selected)?.label).toBe('[2] # 2');
  expect(g.truncated).toBe(false);
});

test('a huge graph is cut to the nearest ancestors of the selection', () => {
  const log = chainLog(1000);
  const g = buildGraph(log, options('s1:1000', 300));
  expect(g.truncated).toBe(true);
  expect(g.nodes.length, `${g.nodes.length} nodes`).toBeLessThanOrEqual(300);
  expect(g.nodes.some(n => n.label === '[999] # 999')).toBe(true);
  expect(g.nodes.some(n => n.label === '[1] # 1')).toBe(false);
});

test('without a selection a huge graph shows the latest runs', () => {
  const g = buildGraph(chainLog(1000), options(null, 300));
  expect(g.truncated).toBe(true);
  expect(g.nodes.length).toBeLessThanOrEqual(300);
  expect(g.nodes.some(n => n.label === '[1000] # 1000')).toBe(true);
});

function edgesOf(log: LineageLog, selected: string | null = null): string[] {
  return buildGraph(log, options(selected))
    .edges.map(e => `${e.from}>${e.to}${e.highlighted ? '*' : ''}`)
    .sort();
}

test('a model runs from the cell that created it to the cells that used it (recorded roles)', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, code: '%%sqlml\nCREATE MODEL churn FROM $clf', models: [['churn', 1, 'output', null]] }),
    run({ n: 2, code: '%%sqlml\nSELECT predict(churn, *) FROM t', models: [['churn', 1, 'input', 's1:1']] }),
    run({ n: 3, code: '%%sqlml\nDESCRIBE MODEL churn', models: [['churn', 1, 'input', 's1:1']] })
  ]);
  expect(edgesOf(log, 's1:2')).toStrictEqual([
    'm:churn@1>x:s1:2*',
    'm:churn@1>x:s1:3',
    'x:s1:1>m:churn@1*'
  ]);
  const model = buildGraph(log, options(null)).nodes.find(n => n.kind === 'model')!;
  expect(model.label).toBe('churn@1');
  expect(model.title).toContain('sha256 ffff');
});

test('a cell that dropped a model version has a removal edge to it, not a use', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, code: '%%sqlml\nCREATE MODEL churn FROM $clf', models: [['churn', 1, 'output', null]] }),
    run({ n: 2, code: '%%sqlml\nSELECT predict(churn, *) FROM t', models: [['churn', 1, 'input', 's1:1']] }),
    run({ n: 3, code: '%%sqlml\nDROP MODEL churn', models: [['churn', 1, 'dropped', 's1:1']] })
  ]);
  const edges = buildGraph(log, options(null)).edges.map(e => `${e.from}>${e.to}${e.removed ? ' removed' : ''}`);
  expect(edges.sort()).toStrictEqual([
    'm:churn@1>x:s1:2',
    'x:s1:1>m:churn@1',
    'x:s1:3>m:churn@1 removed'
  ]);
});

test('a model created and used in one cell is not drawn as its own input', () => {
  const log = new LineageLog();
  log.merge([run({ n: 1, models: [['m', 1, 'output', null]] })]);
  expect(edgesOf(log)).toStrictEqual(['x:s1:1>m:m@1']);
});

test('failed and stale runs are flagged; labels are short and the ids are on hover', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, cell: 'cell-aaaa', code: '\n%%sqlml -o out\nSELECT plan, count(*) AS customers FROM customers GROUP BY plan' }),
    run({ n: 2, cell: 'cell-bbbb', code: 'b = 1 / 0', error: ['ZeroDivisionError', 'division by zero'] })
  ]);
  const g = buildGraph(log, { selected: null, stale: new Map([['s1:1', ['input a rewritten by [3]']]]), cellOf: () => 'cell 1' });
  const [sql, failed] = ['s1:1', 's1:2'].map(id => g.nodes.find(n => n.id === id)!);
  expect(sql.label).toBe('[1] SELECT plan, count(*) AS customers…');
  expect(sql.label.length).toBeLessThanOrEqual(LABEL_CHARS);
  expect(sql.stale).toBe(true);
  expect(sql.failed).toBe(false);
  expect(sql.title).toContain('cell id: cell-aaaa');
  expect(sql.title).toContain('execution: s1:1');
  expect(sql.title).toContain('stale: input a rewritten by [3]');
  expect(failed.failed).toBe(true);
  expect(failed.title).toContain('ZeroDivisionError: division by zero');
});

test('a removed file: its removal edge is marked, and its node while no later run wrote it again', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, files: [file('data.csv', 'write')] }),
    run({ n: 2, files: [{ ...file('data.csv', 'read'), source: 's1:1' }] }),
    run({ n: 3, files: [removedFile('data.csv')] })
  ]);
  const g = buildGraph(log, options(null));
  const edges = g.edges.map(e => `${e.from}>${e.to}${e.removed ? ' removed' : ''}`).sort();
  expect(edges).toStrictEqual([
    'f:data.csv>x:s1:2',
    'x:s1:1>f:data.csv',
    'x:s1:3>f:data.csv removed'
  ]);
  const node = g.nodes.find(n => n.key === 'f:data.csv')!;
  expect(node.removed).toBe(true);
  expect(node.label).toBe('data.csv');
  expect(node.title).toBe('file data.csv\nremoved by [3]');
  expect(g.nodes.filter(n => n.removed).length, 'only the file is marked').toBe(1);

  // Written again afterwards: the file is there, only the removal edge stays marked.
  log.merge([run({ n: 4, files: [file('data.csv', 'write')] })]);
  const again = buildGraph(log, options(null));
  expect(again.nodes.find(n => n.key === 'f:data.csv')!.removed).toBe(false);
  expect(again.nodes.find(n => n.key === 'f:data.csv')!.title).toBe('file data.csv');
  expect(again.edges.filter(e => e.removed).map(e => e.from)).toStrictEqual(['x:s1:3']);
});

test('an environment variable is labelled by its own name, the full read name on hover', () => {
  const log = new LineageLog();
  log.merge([
    run({ n: 1, writes: [["os.environ['NBGOV_DEMO_SEED']"]] }),
    run({ n: 2, reads: [["os.environ['NBGOV_DEMO_SEED']", 's1:1'], ["os.environ['NBGOV_DEMO_API_TOKEN']", null]] })
  ]);
  const g = buildGraph(log, options(null));
  const env = g.nodes.filter(n => n.title.startsWith('environment variable')).map(n => [n.label, n.title]);
  expect(env.sort()).toStrictEqual([
    ['$NBGOV_DEMO_API_TOKEN', "environment variable os.environ['NBGOV_DEMO_API_TOKEN']"],
    ['$NBGOV_DEMO_SEED', "environment variable os.environ['NBGOV_DEMO_SEED']"]
  ]);
  expect(environmentVariable('os.environ["it\'s"]')).toBe("it\'s");
  expect(environmentVariable('environ')).toBeNull();
  expect(environmentVariable("os.environ['']")).toBeNull();
  expect(environmentVariable("x_os.environ['A']")).toBeNull();
});
