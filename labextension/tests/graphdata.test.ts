import { expect, test } from 'vitest';
import { buildGraph } from '../src/graphdata';
import { LineageLog } from '../src/log';
import { model, run } from './fixtures';

const label = (e: { body: { execution_count: number | null } }) => `[${e.body.execution_count}]`;

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
  const g = buildGraph(log, 's1:2', label);
  expect(g.nodes.map(n => n.label).sort()).toStrictEqual(['[1]', '[2]', '[3]', 'v1', 'v2', 'v3']);
  const edges = g.edges.map(e => `${e.from}>${e.to}${e.highlighted ? '*' : ''}`).sort();
  expect(edges).toStrictEqual([
    'v:v1>x:s1:2*',
    'v:v2>x:s1:3',
    'x:s1:1>v:v1*',
    'x:s1:2>v:v2',
    'x:s1:3>v:v3'
  ]);
  const lit = g.nodes.filter(n => n.highlighted).map(n => n.label).sort();
  expect(lit).toStrictEqual(['[1]', '[2]', 'v1']);
  expect(g.nodes.find(n => n.selected)?.label).toBe('[2]');
  expect(g.truncated).toBe(false);
});

test('a huge graph is cut to the nearest ancestors of the selection', () => {
  const log = chainLog(1000);
  const g = buildGraph(log, 's1:1000', label, 300);
  expect(g.truncated).toBe(true);
  expect(g.nodes.length, `${g.nodes.length} nodes`).toBeLessThanOrEqual(300);
  expect(g.nodes.some(n => n.label === '[999]')).toBe(true);
  expect(g.nodes.some(n => n.label === '[1]')).toBe(false);
});

test('without a selection a huge graph shows the latest runs', () => {
  const g = buildGraph(chainLog(1000), null, label, 300);
  expect(g.truncated).toBe(true);
  expect(g.nodes.length).toBeLessThanOrEqual(300);
  expect(g.nodes.some(n => n.label === '[1000]')).toBe(true);
});

test('a model points out of the run that registered it and into the runs that scored it', () => {
  const log = new LineageLog();
  const creator = run({ n: 1 });
  creator.body.models = [model('churn', 1, 'output', null)];
  const scorer = run({ n: 2 });
  scorer.body.models = [model('churn', 1, 'input', 's1:1')];
  log.merge([creator, scorer]);
  const edges = buildGraph(log, null, label).edges.map(e => `${e.from}>${e.to}`).sort();
  expect(edges).toStrictEqual(['m:churn@1>x:s1:2', 'x:s1:1>m:churn@1']);
});
