/** The lineage graph, laid out by dagre and drawn as SVG (labels as text nodes). */
import * as dagre from '@dagrejs/dagre';
import { cellLabel, el, svg } from './dom';
import { buildGraph, GraphData, GraphNode } from './graphdata';
import { NotebookLineageModel } from './model';
import { LineageView } from './view';

const CHAR_W = 7;
const NODE_H = 26;

export class GraphView extends LineageView {
  constructor() {
    super('nbgov-Graph');
  }

  render(): void {
    this.node.replaceChildren();
    const model = this._model;
    if (!model || !this.isVisible) {
      return;
    }
    if (model.log.size === 0) {
      this.node.appendChild(el('p', 'nbgov-empty', 'No executions recorded yet.'));
      return;
    }
    const cells = model.cellIndexes();
    const data = buildGraph(model.log, model.selected, e => {
      const index = e.body.cell_id ? cells.get(e.body.cell_id) : null;
      return `[${e.body.execution_count ?? ' '}] ${cellLabel(index)}`;
    });
    if (data.truncated) {
      this.node.appendChild(
        el('p', 'nbgov-notice', 'Large graph: showing only the selected execution and its nearest ancestors (or the latest runs).')
      );
    }
    this.node.appendChild(this._draw(model, data));
  }

  protected onAfterShow(): void {
    this.render();
  }

  private _draw(model: NotebookLineageModel, data: GraphData): SVGSVGElement {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'TB', nodesep: 14, ranksep: 28, marginx: 8, marginy: 8 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of data.nodes) {
      g.setNode(n.key, { width: Math.min(220, 16 + CHAR_W * n.label.length), height: NODE_H });
    }
    for (const e of data.edges) {
      g.setEdge(e.from, e.to);
    }
    dagre.layout(g);
    const size = g.graph();
    const root = svg('svg', {
      class: 'nbgov-Graph-svg',
      width: Math.ceil(size.width ?? 0),
      height: Math.ceil(size.height ?? 0),
      viewBox: `0 0 ${Math.ceil(size.width ?? 0)} ${Math.ceil(size.height ?? 0)}`
    });
    const defs = svg('defs');
    const marker = svg('marker', { id: 'nbgov-arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' });
    marker.appendChild(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: 'nbgov-Graph-arrow' }));
    defs.appendChild(marker);
    root.appendChild(defs);
    for (const e of data.edges) {
      const points = g.edge(e.from, e.to).points ?? [];
      const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
      root.appendChild(
        svg('path', { d, class: `nbgov-Graph-edge${e.highlighted ? ' nbgov-mod-highlighted' : ''}`, 'marker-end': 'url(#nbgov-arrow)' })
      );
    }
    for (const n of data.nodes) {
      root.appendChild(this._node(model, n, g.node(n.key)));
    }
    return root;
  }

  private _node(model: NotebookLineageModel, n: GraphNode, box: dagre.Node): SVGGElement {
    const classes = ['nbgov-Graph-node', `nbgov-kind-${n.kind}`];
    if (n.highlighted) {
      classes.push('nbgov-mod-highlighted');
    }
    if (n.selected) {
      classes.push('nbgov-mod-selected');
    }
    const group = svg('g', { class: classes.join(' '), transform: `translate(${box.x - box.width / 2},${box.y - box.height / 2})` });
    group.appendChild(svg('rect', { width: box.width, height: box.height, rx: n.kind === 'execution' ? 4 : 12 }));
    const maxChars = Math.floor((box.width - 12) / CHAR_W);
    const text = n.label.length > maxChars ? `${n.label.slice(0, maxChars - 1)}…` : n.label;
    group.appendChild(svg('text', { x: box.width / 2, y: box.height / 2 + 4, 'text-anchor': 'middle' }, text));
    group.appendChild(svg('title', {}, n.label));
    if (n.id) {
      const id = n.id;
      group.addEventListener('click', () => {
        model.select(id);
        model.jumpTo(id);
      });
    }
    return group;
  }
}
