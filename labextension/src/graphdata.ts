/**
 * The lineage graph as plain data: executions and the variables, files and models
 * flowing between them, with the ancestors of one execution marked, failed and stale
 * runs flagged, and short labels (`[n] first line`) with the full story on hover.
 * A model runs from the execution that created it to the executions that used it; an
 * execution that dropped a version has a removal edge to it.
 * A file an execution removed (or renamed away) is marked on its edge, and on its node
 * when the newest execution shown that wrote the path removed it.
 * Pure, unit-tested.
 */
import { LineageLog } from './log';
import { codePreview, shortLabel } from './preview';
import { ExecutionEntry, ModelUse, StaleMap } from './types';

export type NodeKind = 'execution' | 'variable' | 'file' | 'model';

export interface GraphNode {
  key: string;
  kind: NodeKind;
  /** Short text drawn in the node. */
  label: string;
  /** Everything else, shown on hover (cell id, full code line, error, stale reasons). */
  title: string;
  /** Execution id for execution nodes. */
  id?: string;
  highlighted: boolean;
  selected: boolean;
  failed: boolean;
  stale: boolean;
  /** A file the newest shown writer of its path removed: nothing is there after it. */
  removed: boolean;
}

export interface GraphEdge {
  from: string;
  to: string;
  highlighted: boolean;
  /** An execution → file (or model) edge for a removal, not a write of content. */
  removed: boolean;
}

export interface GraphData {
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** Set when the graph was cut down to the selected execution's ancestry. */
  truncated: boolean;
}

export interface GraphOptions {
  selected: string | null;
  stale: StaleMap;
  /** "cell 4", "cell deleted", …: where an execution's cell is now. */
  cellOf: (e: ExecutionEntry) => string;
  maxNodes?: number;
}

export const MAX_NODES = 300;
/**
 * The variable an environment read or write names (`os.environ['SEED']`: SEED), else null:
 * its node is labelled `$SEED`, since a label cut to the node's width would keep only
 * `os.environ['…` of every such name and leave them all alike.
 */
export function environmentVariable(name: string): string | null {
  const match = /^os\.environ\[(['"])(.+)\1\]$/.exec(name);
  return match ? match[2] : null;
}

/** Characters of code kept in an execution's label before the view fits it to pixels. */
export const LABEL_CHARS = 40;

function modelKey(model: ModelUse): string {
  return `${model.name}@${model.version ?? '?'}`;
}

export function buildGraph(log: LineageLog, options: GraphOptions): GraphData {
  const { selected } = options;
  const maxNodes = options.maxNodes ?? MAX_NODES;
  const lineage = new Set<string>();
  if (selected && log.byId(selected)) {
    lineage.add(selected);
    log.ancestors(selected).forEach(id => lineage.add(id));
  }
  let executions = log.currentExecutions();
  const shown = new Set(executions);
  for (const id of lineage) {
    const e = log.byId(id);
    if (e && !shown.has(e)) {
      executions.push(e);
      shown.add(e);
    }
  }
  let graph = assemble(executions, lineage, options);
  if (graph.nodes.length > maxNodes && lineage.size > 0) {
    // The selected execution and its nearest ancestors, as many as fit.
    const keep = new Set([...lineage].slice(0, Math.max(1, Math.floor(maxNodes / 4))));
    executions = executions.filter(e => keep.has(e.body.id));
    graph = { ...assemble(executions, lineage, options), truncated: true };
  } else if (graph.nodes.length > maxNodes) {
    executions = executions.slice(-Math.max(1, Math.floor(maxNodes / 4)));
    graph = { ...assemble(executions, lineage, options), truncated: true };
  }
  return graph;
}

function executionTitle(e: ExecutionEntry, cell: string, reasons: string[]): string {
  const b = e.body;
  const lines = [
    `[${b.execution_count ?? '?'}] · ${cell} · ${b.status}`,
    `cell id: ${b.cell_id ?? '—'}`,
    `execution: ${b.id}`,
    codePreview(b.code)
  ];
  if (b.error) {
    lines.push(`${b.error.type}: ${b.error.message}`);
  }
  lines.push(...reasons.map(r => `stale: ${r}`));
  return lines.join('\n');
}

function assemble(executions: ExecutionEntry[], lineage: Set<string>, options: GraphOptions): GraphData {
  const nodes = new Map<string, GraphNode>();
  const edges = new Map<string, GraphEdge>();
  const shown = new Set(executions.map(e => e.body.id));
  const plain = { highlighted: false, selected: false, failed: false, stale: false, removed: false };
  const node = (key: string, kind: NodeKind, label: string, title: string): void => {
    if (!nodes.has(key)) {
      nodes.set(key, { key, kind, label, title, ...plain });
    }
  };
  const edge = (from: string, to: string, highlighted: boolean, removed = false): void => {
    const k = `${from}\u0000${to}`;
    const have = edges.get(k);
    if (have) {
      have.highlighted = have.highlighted || highlighted;
      have.removed = have.removed || removed;
    } else {
      edges.set(k, { from, to, highlighted, removed });
    }
    if (highlighted) {
      nodes.get(from)!.highlighted = true;
      nodes.get(to)!.highlighted = true;
    }
  };
  const dataNode = (key: string): void => {
    const kind: NodeKind = key.startsWith('v:') ? 'variable' : 'file';
    const name = key.slice(2);
    const variable = kind === 'variable' ? environmentVariable(name) : null;
    if (variable !== null) {
      node(key, kind, `$${variable}`, `environment variable ${name}`);
      return;
    }
    const label = kind === 'file' ? name.split('/').pop() || name : name;
    node(key, kind, label, `${kind} ${name}`);
  };
  const modelNode = (m: ModelUse): void => {
    node(`m:${modelKey(m)}`, 'model', modelKey(m), `model ${modelKey(m)}\nsha256 ${m.sha256 || '—'}`);
  };
  for (const e of executions) {
    const b = e.body;
    const reasons = options.stale.get(b.id) ?? [];
    nodes.set(`x:${b.id}`, {
      key: `x:${b.id}`,
      kind: 'execution',
      label: shortLabel(b.execution_count, b.code, LABEL_CHARS),
      title: executionTitle(e, options.cellOf(e), reasons),
      id: b.id,
      highlighted: lineage.has(b.id),
      selected: b.id === options.selected,
      failed: b.status !== 'ok',
      stale: reasons.length > 0,
      removed: false
    });
  }
  // Each file's newest writer among the shown executions (the list is not in log order
  // when older runs in the selected lineage were added): its write says what is there now.
  const newest = new Map<string, { seq: number; removed: boolean; count: number | null }>();
  // Outputs first, so every data node exists before the edges that read it.
  for (const e of executions) {
    const me = `x:${e.body.id}`;
    for (const w of e.body.writes) {
      dataNode(`v:${w.name}`);
      edge(me, `v:${w.name}`, false);
    }
    for (const f of e.body.files.filter(f => f.mode === 'write')) {
      dataNode(`f:${f.path}`);
      edge(me, `f:${f.path}`, false, f.removed);
      const have = newest.get(f.path);
      if (!have || have.seq < e.seq) {
        newest.set(f.path, { seq: e.seq, removed: f.removed, count: e.body.execution_count });
      }
    }
    for (const m of e.body.models.filter(m => m.role !== 'input')) {
      modelNode(m);
      edge(me, `m:${modelKey(m)}`, false, m.role === 'dropped');
    }
  }
  for (const [path, last] of newest) {
    const n = nodes.get(`f:${path}`)!;
    n.removed = last.removed;
    if (last.removed) {
      n.title = `file ${path}\nremoved by [${last.count ?? '?'}]`;
    }
  }
  for (const e of executions) {
    const me = `x:${e.body.id}`;
    const use = (key: string, source: string | null): void => {
      const highlighted = lineage.has(e.body.id) && source !== null && lineage.has(source);
      edge(key, me, highlighted);
      if (source && source !== e.body.id && shown.has(source)) {
        edge(`x:${source}`, key, highlighted);
      }
    };
    for (const r of e.body.reads) {
      dataNode(`v:${r.name}`);
      use(`v:${r.name}`, r.source);
    }
    for (const f of e.body.files.filter(f => f.mode !== 'write')) {
      dataNode(`f:${f.path}`);
      use(`f:${f.path}`, f.source);
    }
    for (const m of e.body.models.filter(m => m.role === 'input')) {
      modelNode(m);
      use(`m:${modelKey(m)}`, m.source);
    }
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()], truncated: false };
}
