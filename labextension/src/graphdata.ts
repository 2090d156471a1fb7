/**
 * The lineage graph as plain data: executions and the variables, files and models
 * flowing between them, with the ancestors of one execution marked. Pure, unit-tested.
 */
import { LineageLog } from './log';
import { ExecutionEntry } from './types';

export type NodeKind = 'execution' | 'variable' | 'file' | 'model';

export interface GraphNode {
  key: string;
  kind: NodeKind;
  label: string;
  /** Execution id for execution nodes. */
  id?: string;
  highlighted: boolean;
  selected: boolean;
}

export interface GraphEdge {
  from: string;
  to: string;
  highlighted: boolean;
}

export interface GraphData {
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Set when the graph was cut down to the selected execution's ancestry. */
  truncated: boolean;
}

export const MAX_NODES = 300;

export function buildGraph(
  log: LineageLog,
  selected: string | null,
  label: (e: ExecutionEntry) => string,
  maxNodes = MAX_NODES
): GraphData {
  const lineage = new Set<string>();
  if (selected && log.byId(selected)) {
    lineage.add(selected);
    log.ancestors(selected).forEach(id => lineage.add(id));
  }
  let executions = log.currentExecutions();
  for (const id of lineage) {
    const e = log.byId(id);
    if (e && !executions.includes(e)) {
      executions.push(e);
    }
  }
  let graph = assemble(executions, lineage, selected, label);
  if (graph.nodes.length > maxNodes && lineage.size > 0) {
    // The selected execution and its nearest ancestors, as many as fit.
    const keep = new Set([...lineage].slice(0, Math.max(1, Math.floor(maxNodes / 4))));
    executions = executions.filter(e => keep.has(e.body.id));
    graph = { ...assemble(executions, lineage, selected, label), truncated: true };
  } else if (graph.nodes.length > maxNodes) {
    executions = executions.slice(-Math.max(1, Math.floor(maxNodes / 4)));
    graph = { ...assemble(executions, lineage, selected, label), truncated: true };
  }
  return graph;
}

function assemble(
  executions: ExecutionEntry[],
  lineage: Set<string>,
  selected: string | null,
  label: (e: ExecutionEntry) => string
): GraphData {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const shown = new Set(executions.map(e => e.body.id));
  const node = (key: string, kind: NodeKind, text: string): void => {
    if (!nodes.has(key)) {
      nodes.set(key, { key, kind, label: text, highlighted: false, selected: false });
    }
  };
  const edge = (from: string, to: string, highlighted: boolean): void => {
    const k = `${from}\u0000${to}`;
    const have = edges.get(k);
    if (have) {
      have.highlighted = have.highlighted || highlighted;
    } else {
      edges.set(k, { from, to, highlighted });
    }
    if (highlighted) {
      nodes.get(from)!.highlighted = true;
      nodes.get(to)!.highlighted = true;
    }
  };
  for (const e of executions) {
    const key = `x:${e.body.id}`;
    nodes.set(key, {
      key,
      kind: 'execution',
      label: label(e),
      id: e.body.id,
      highlighted: lineage.has(e.body.id),
      selected: e.body.id === selected
    });
  }
  const inLineage = (consumer: ExecutionEntry, source: string | null) =>
    lineage.has(consumer.body.id) && source !== null && lineage.has(source);
  for (const e of executions) {
    const me = `x:${e.body.id}`;
    for (const w of e.body.writes) {
      node(`v:${w.name}`, 'variable', w.name);
      edge(me, `v:${w.name}`, false);
    }
    for (const f of e.body.files) {
      node(`f:${f.path}`, 'file', f.path);
      if (f.mode === 'write') {
        edge(me, `f:${f.path}`, false);
      }
    }
    for (const m of e.body.models) {
      const name = `${m.name}@${m.version ?? '?'}`;
      node(`m:${name}`, 'model', name);
      if (m.role === 'output') {
        edge(me, `m:${name}`, false); // the execution that registered the version wrote it
      }
    }
  }
  for (const e of executions) {
    const me = `x:${e.body.id}`;
    const uses: [string, string | null][] = [
      ...e.body.reads.map(r => [`v:${r.name}`, r.source] as [string, string | null]),
      ...e.body.files.filter(f => f.mode !== 'write').map(f => [`f:${f.path}`, f.source] as [string, string | null]),
      ...e.body.models
        .filter(m => m.role === 'input')
        .map(m => [`m:${m.name}@${m.version ?? '?'}`, m.source] as [string, string | null])
    ];
    for (const [key, source] of uses) {
      if (!nodes.has(key)) {
        node(key, key.startsWith('v:') ? 'variable' : key.startsWith('f:') ? 'file' : 'model', key.slice(2));
      }
      const highlighted = inLineage(e, source);
      edge(key, me, highlighted);
      if (source && shown.has(source)) {
        edge(`x:${source}`, key, highlighted);
      }
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()], truncated: false };
}
