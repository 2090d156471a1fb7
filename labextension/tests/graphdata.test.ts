import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildGraph } from '../src/graphdata';
import { LineageLog } from '../src/log';
import { run } from './fixtures';

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
  assert.deepEqual(g.nodes.map(n => n.label).sort(), ['[1]', '[2]', '[3]', 'v1', 'v2', 'v3']);
  const edges = g.edges.map(e => `${e.from}>${e.to}${e.highlighted ? '*' : ''}`).sort();
  assert.deepEqual(edges, [
    'v:v1>x:s1:2*',
    'v:v2>x:s1:3',
    'x:s1:1>v:v1*',
    'x:s1:2>v:v2',
    'x:s1:3>v:v3'
  ]);
  const lit = g.nodes.filter(n => n.highlighted).map(n => n.label).sort();
  assert.deepEqual(lit, ['[1]', '[2]', 'v1']);
  assert.equal(g.nodes.find(n => n.selected)?.label, '[2]');
  assert.equal(g.truncated, false);
});

test('a huge graph is cut to the nearest ancestors of the selection', () => {
  const log = chainLog(1000);
  const g = buildGraph(log, 's1:1000', label, 300);
  assert.equal(g.truncated, true);
  assert.ok(g.nodes.length <= 300, `${g.nodes.length} nodes`);
  assert.ok(g.nodes.some(n => n.label === '[999]'));
  assert.ok(!g.nodes.some(n => n.label === '[1]'));
});

test('without a selection a huge graph shows the latest runs', () => {
  const g = buildGraph(chainLog(1000), null, label, 300);
  assert.equal(g.truncated, true);
  assert.ok(g.nodes.length <= 300);
  assert.ok(g.nodes.some(n => n.label === '[1000]'));
});
