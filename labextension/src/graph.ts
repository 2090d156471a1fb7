/**
 * The lineage graph, laid out by dagre and drawn as SVG (labels as text nodes) in a
 * viewport that fits the panel: drag or scroll to pan, Ctrl/⌘ + wheel (or pinch), the
 * +/− buttons or the +, −, 0 keys to zoom, "Fit" to see it all. Node labels are
 * measured and cut so they stay inside their boxes: code at word boundaries, the names
 * of variables, files and models in the middle (their ends tell them apart).
 */
import * as dagre from '@dagrejs/dagre';
import { cellLabel, el, svg, TextFitter } from './dom';
import { buildGraph, GraphData, GraphNode } from './graphdata';
import { NotebookLineageModel } from './model';
import { LineageView } from './view';
import { fitAll, initialView, panBy, Size, transform, View, zoomAt } from './zoom';

const NODE_H = 24;
const PAD_X = 8;
const MAX_EXECUTION_W = 180;
const MAX_DATA_W = 120;
const FONT_PX = 11;
const ZOOM_STEP = 1.25;
const DRAG_SLOP_PX = 4;
const KEY_PAN_PX = 40;

interface Drag {
  pointer: number;
  x: number;
  y: number;
  moved: boolean;
  target: Element | null;
}

export class GraphView extends LineageView {
  private _toolbar = el('div', 'nbgov-Graph-toolbar');
  private _zoomLabel = el('span', 'nbgov-Graph-zoom');
  private _notice = el('p', 'nbgov-notice');
  private _viewport = el('div', 'nbgov-Graph-viewport');
  private _layer: SVGGElement | null = null;
  private _content: Size = { width: 0, height: 0 };
  /** Where the selected execution's node is, in content coordinates. */
  private _selectedCentre: { x: number; y: number } | null = null;
  private _view: View = { x: 0, y: 0, k: 1 };
  private _userMoved = false;
  private _drag: Drag | null = null;
  private _resize: ResizeObserver | null = null;
  private _fitter = new TextFitter();

  constructor() {
    super('nbgov-Graph');
    const button = (text: string, label: string, action: () => void): HTMLButtonElement => {
      const b = el('button', 'nbgov-Graph-button', text);
      b.title = label;
      b.setAttribute('aria-label', label);
      b.addEventListener('click', action);
      return b;
    };
    this._toolbar.append(
      button('−', 'Zoom out', () => this._zoomCentre(1 / ZOOM_STEP)),
      button('+', 'Zoom in', () => this._zoomCentre(ZOOM_STEP)),
      button('Fit', 'Fit the whole graph in the panel', () => this.fit()),
      this._zoomLabel
    );
    this._viewport.tabIndex = 0;
    this._viewport.setAttribute('aria-label', 'Lineage graph: drag to pan, Ctrl + wheel or + and − to zoom, 0 to fit');
    this.node.append(this._toolbar, this._viewport);
    this._viewport.addEventListener('wheel', ev => this._onWheel(ev), { passive: false });
    this._viewport.addEventListener('pointerdown', ev => this._onPointerDown(ev));
    this._viewport.addEventListener('pointermove', ev => this._onPointerMove(ev));
    this._viewport.addEventListener('pointerup', ev => this._onPointerUp(ev));
    this._viewport.addEventListener('pointercancel', () => (this._drag = null));
    this._viewport.addEventListener('keydown', ev => this._onKey(ev));
    if (typeof ResizeObserver !== 'undefined') {
      this._resize = new ResizeObserver(() => {
        if (!this._userMoved && this._layer) {
          this._setView(this._firstView(), false);
        }
      });
      this._resize.observe(this._viewport);
    }
  }

  /** The current pan/zoom (for tests and for keeping it across live updates). */
  get view(): View {
    return { ...this._view };
  }

  setModel(model: NotebookLineageModel | null): void {
    this._userMoved = false; // another notebook: start from a fitted view
    super.setModel(model);
  }

  dispose(): void {
    this._resize?.disconnect();
    super.dispose();
  }

  /** Show the whole graph. */
  fit(): void {
    this._setView(fitAll(this._content, this._viewportSize()), true);
  }

  render(): void {
    const model = this._model;
    if (!model || !this.isVisible) {
      return;
    }
    this._notice.remove();
    if (model.log.size === 0) {
      this._layer = null;
      this._viewport.replaceChildren(el('p', 'nbgov-empty', 'No executions recorded yet.'));
      return;
    }
    const cells = model.cellIndexes();
    const data = buildGraph(model.log, {
      selected: model.selected,
      stale: model.stale(),
      cellOf: e => cellLabel(e.body.cell_id ? cells.get(e.body.cell_id) : null)
    });
    if (data.truncated) {
      this._notice.textContent = 'Large graph: showing only the selected execution and its nearest ancestors (or the latest runs).';
      this.node.insertBefore(this._notice, this._viewport);
    }
    this._viewport.replaceChildren(this._draw(data));
    this._setView(this._userMoved ? this._view : this._firstView(), this._userMoved);
  }

  protected onAfterShow(): void {
    this.render();
  }

  private _viewportSize(): Size {
    return { width: this._viewport.clientWidth || 240, height: this._viewport.clientHeight || 300 };
  }

  private _firstView(): View {
    return initialView(this._content, this._viewportSize(), this._selectedCentre ?? undefined);
  }

  private _setView(view: View, byUser: boolean): void {
    this._view = view;
    this._userMoved = byUser;
    this._layer?.setAttribute('transform', transform(view));
    this._zoomLabel.textContent = `${Math.round(view.k * 100)}%`;
  }

  private _zoomCentre(factor: number): void {
    const size = this._viewportSize();
    this._setView(zoomAt(this._view, factor, size.width / 2, size.height / 2), true);
  }

  private _draw(data: GraphData): SVGSVGElement {
    const g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: 'TB', nodesep: 10, ranksep: 24, marginx: 4, marginy: 4 });
    g.setDefaultEdgeLabel(() => ({}));
    const texts = new Map<string, string>();
    const font = `${FONT_PX}px ${getComputedStyle(this.node).fontFamily || 'sans-serif'}`;
    for (const n of data.nodes) {
      const mark = marks(n) ? this._fitter.measure(`${marks(n)} `, font) : 0;
      const max = (n.kind === 'execution' ? MAX_EXECUTION_W : MAX_DATA_W) - 2 * PAD_X - mark;
      const text = this._fitter.fit(n.label, max, font, n.kind !== 'execution');
      texts.set(n.key, text);
      const width = Math.ceil(this._fitter.measure(text, font) + mark) + 2 * PAD_X;
      g.setNode(n.key, { width: Math.max(n.kind === 'execution' ? 48 : 28, width), height: NODE_H });
    }
    for (const e of data.edges) {
      g.setEdge(e.from, e.to);
    }
    dagre.layout(g);
    const size = g.graph();
    this._content = { width: Math.ceil(size.width ?? 0), height: Math.ceil(size.height ?? 0) };
    const root = svg('svg', { class: 'nbgov-Graph-svg', role: 'img' });
    root.setAttribute(
      'aria-label',
      `Lineage graph: ${data.nodes.filter(n => n.kind === 'execution').length} executions and the data between them`
    );
    const defs = svg('defs');
    for (const [id, cls] of [['nbgov-arrow', 'nbgov-Graph-arrow'], ['nbgov-arrow-lit', 'nbgov-Graph-arrow nbgov-mod-highlighted']]) {
      const marker = svg('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto' });
      marker.appendChild(svg('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }));
      defs.appendChild(marker);
    }
    root.appendChild(defs);
    const layer = svg('g', { class: 'nbgov-Graph-layer' });
    for (const e of data.edges) {
      const points = g.edge(e.from, e.to).points ?? [];
      const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
      layer.appendChild(
        svg('path', {
          d,
          'data-from': e.from,
          'data-to': e.to,
          class: `nbgov-Graph-edge${e.highlighted ? ' nbgov-mod-highlighted' : ''}${e.removed ? ' nbgov-mod-removed' : ''}`,
          'marker-end': `url(#${e.highlighted ? 'nbgov-arrow-lit' : 'nbgov-arrow'})`
        })
      );
    }
    this._selectedCentre = null;
    for (const n of data.nodes) {
      const box = g.node(n.key);
      layer.appendChild(this._node(n, texts.get(n.key) ?? n.label, box));
      if (n.selected) {
        this._selectedCentre = { x: box.x, y: box.y };
      }
    }
    root.appendChild(layer);
    this._layer = layer;
    return root;
  }

  private _node(n: GraphNode, text: string, box: dagre.Node): SVGGElement {
    const classes = ['nbgov-Graph-node', `nbgov-kind-${n.kind}`];
    const flags: [boolean, string][] = [
      [n.highlighted, 'nbgov-mod-highlighted'],
      [n.selected, 'nbgov-mod-selected'],
      [n.failed, 'nbgov-mod-error'],
      [n.stale, 'nbgov-mod-stale'],
      [n.removed, 'nbgov-mod-removed']
    ];
    classes.push(...flags.filter(([on]) => on).map(([, cls]) => cls));
    const group = svg('g', { class: classes.join(' '), transform: `translate(${box.x - box.width / 2},${box.y - box.height / 2})` });
    if (n.id) {
      group.dataset.id = n.id;
    }
    group.appendChild(svg('rect', { width: box.width, height: box.height, rx: n.kind === 'execution' ? 4 : 11 }));
    const label = svg('text', { x: box.width / 2, y: box.height / 2 + 4, 'text-anchor': 'middle' });
    const mark = marks(n);
    if (mark) {
      label.appendChild(svg('tspan', { class: 'nbgov-Graph-mark' }, `${mark} `));
    }
    label.appendChild(document.createTextNode(text));
    group.appendChild(label);
    group.appendChild(svg('title', {}, n.title));
    return group;
  }

  private _onWheel(ev: WheelEvent): void {
    if (!this._layer) {
      return;
    }
    ev.preventDefault();
    if (ev.ctrlKey || ev.metaKey) {
      const rect = this._viewport.getBoundingClientRect();
      const factor = Math.exp(-ev.deltaY * 0.002);
      this._setView(zoomAt(this._view, factor, ev.clientX - rect.left, ev.clientY - rect.top), true);
    } else {
      this._setView(panBy(this._view, -ev.deltaX, -ev.deltaY), true);
    }
  }

  private _onPointerDown(ev: PointerEvent): void {
    if (ev.button !== 0 || !this._layer) {
      return;
    }
    this._drag = { pointer: ev.pointerId, x: ev.clientX, y: ev.clientY, moved: false, target: ev.target as Element | null };
  }

  private _onPointerMove(ev: PointerEvent): void {
    const drag = this._drag;
    if (!drag || drag.pointer !== ev.pointerId) {
      return;
    }
    const dx = ev.clientX - drag.x;
    const dy = ev.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < DRAG_SLOP_PX) {
      return;
    }
    if (!drag.moved) {
      drag.moved = true;
      this._viewport.setPointerCapture(ev.pointerId);
      this._viewport.classList.add('nbgov-mod-panning');
    }
    drag.x = ev.clientX;
    drag.y = ev.clientY;
    this._setView(panBy(this._view, dx, dy), true);
  }

  private _onPointerUp(ev: PointerEvent): void {
    const drag = this._drag;
    this._drag = null;
    this._viewport.classList.remove('nbgov-mod-panning');
    if (!drag || drag.pointer !== ev.pointerId || drag.moved) {
      return;
    }
    // A click, not a drag: an execution node selects its run and jumps to the cell.
    const node = drag.target?.closest?.('.nbgov-Graph-node') as SVGGElement | null;
    const id = node?.dataset.id;
    const model = this._model;
    if (id && model) {
      model.select(id);
      model.jumpTo(id);
    }
  }

  private _onKey(ev: KeyboardEvent): void {
    const size = this._viewportSize();
    const actions: Record<string, () => View> = {
      '+': () => zoomAt(this._view, ZOOM_STEP, size.width / 2, size.height / 2),
      '=': () => zoomAt(this._view, ZOOM_STEP, size.width / 2, size.height / 2),
      '-': () => zoomAt(this._view, 1 / ZOOM_STEP, size.width / 2, size.height / 2),
      '0': () => fitAll(this._content, size),
      ArrowLeft: () => panBy(this._view, KEY_PAN_PX, 0),
      ArrowRight: () => panBy(this._view, -KEY_PAN_PX, 0),
      ArrowUp: () => panBy(this._view, 0, KEY_PAN_PX),
      ArrowDown: () => panBy(this._view, 0, -KEY_PAN_PX)
    };
    const action = actions[ev.key];
    if (action && this._layer) {
      ev.preventDefault();
      this._setView(action(), true);
    }
  }
}

/**
 * "✕" for a failed run, "⚠" for a stale one, "removed" before a file that is gone: the
 * state is not told by colour or a dashed outline alone.
 */
function marks(n: GraphNode): string {
  return n.failed ? '✕' : n.stale ? '⚠' : n.removed ? 'removed' : '';
}
