/**
 * Executions newest first, as a virtualized list: only the rows on screen (plus a
 * margin) are in the DOM, so scrolling 10,000 executions stays smooth. Each row shows
 * its count, status, cell, time, a one-line code preview, and its error and stale
 * reason when it has them. Keyboard: arrows, Page Up/Down, Home/End move the selection;
 * Enter jumps to the cell.
 */
import { cellLabel, clock, duration, el, TextFitter } from './dom';
import { rowHeight, sessionStrips, timelineRow, TimelineRow } from './rows';
import { ExecutionEntry, StaleMap } from './types';
import { LineageView } from './view';
import { VirtualLayout } from './virtual';

/** Rows drawn beyond each edge of the viewport, in pixels, so fast scrolling shows no gaps. */
const OVERSCAN_PX = 240;
/** A row's horizontal padding and border (base.css), left out of its text width. */
const ROW_INSET_PX = 16;

export class TimelineView extends LineageView {
  private _entries: ExecutionEntry[] = [];
  /** Per row, its session strip or null (see `sessionStrips`). */
  private _strips: (string | null)[] = [];
  private _index = new Map<string, number>();
  private _stale: StaleMap = new Map();
  private _cells = new Map<string, number>();
  private _geometry = new VirtualLayout([]);
  private _rows = new Map<string, TimelineRow>();
  private _drawn = new Map<number, HTMLElement>();
  private _spacer = el('div', 'nbgov-Timeline-spacer');
  private _empty = el('p', 'nbgov-empty', 'No executions recorded yet. Run `%load_ext nbgov` in this notebook, then run cells.');
  private _frame = 0;
  private _resize: ResizeObserver | null = null;
  private _fitter = new TextFitter();
  /** Hidden strips whose computed fonts the fitter measures with. */
  private _probe = el('div', 'nbgov-Timeline-probe');
  private _fonts: { code: string; problem: string } | null = null;
  private _textWidth = 0;

  constructor() {
    super('nbgov-Timeline');
    const node = this.node;
    node.tabIndex = 0;
    node.setAttribute('role', 'listbox');
    node.setAttribute('aria-label', 'Executions, newest first');
    this._probe.setAttribute('aria-hidden', 'true');
    this._probe.append(el('div', 'nbgov-probe-code', 'x'), el('div', 'nbgov-probe-problem', 'x'));
    node.append(this._probe, this._spacer);
    node.addEventListener('scroll', () => this._schedulePaint(), { passive: true });
    node.addEventListener('click', ev => this._onClick(ev));
    node.addEventListener('keydown', ev => this._onKey(ev));
    if (typeof ResizeObserver !== 'undefined') {
      this._resize = new ResizeObserver(() => this._schedulePaint());
      this._resize.observe(node);
    }
  }

  dispose(): void {
    this._resize?.disconnect();
    cancelAnimationFrame(this._frame);
    super.dispose();
  }

  /** Rebuild from the model: the entries, their heights, then the rows on screen. */
  render(): void {
    const model = this._model;
    const anchor = this._anchor();
    this._clearDrawn();
    this._rows.clear();
    this._entries = model ? [...model.log.executions].reverse() : [];
    this._index = new Map(this._entries.map((e, i) => [e.body.id, i]));
    this._stale = model ? model.stale() : new Map();
    this._fonts = null; // the theme or font size may have changed
    this._cells = model ? model.cellIndexes() : new Map();
    this._strips = model ? sessionStrips(this._entries, model.log.sessions, clock) : [];
    this._geometry = new VirtualLayout(this._entries.map((e, i) => rowHeight(e, this._stale, this._strips[i])));
    this._spacer.style.height = `${this._geometry.total}px`;
    const empty = model !== null && this._entries.length === 0;
    this._empty.remove();
    if (empty) {
      this.node.insertBefore(this._empty, this._spacer);
    }
    if (anchor) {
      // Keep the rows the user is reading in place when newer runs arrive above them.
      const index = this._index.get(anchor.id);
      if (index !== undefined) {
        this.node.scrollTop = this._geometry.offset(index) + anchor.within;
      }
    }
    this._paint();
  }

  /** The selection changed elsewhere (or here): restyle rows and bring it into view. */
  showSelection(): void {
    const index = this._selectedIndex();
    if (index >= 0) {
      const node = this.node;
      const top = this._geometry.scrollToShow(index, node.scrollTop, node.clientHeight);
      if (top !== node.scrollTop) {
        node.scrollTop = top;
      }
    }
    this._paint();
  }

  protected onAfterShow(): void {
    this._paint();
  }

  private _anchor(): { id: string; within: number } | null {
    const top = this.node.scrollTop;
    if (top <= 0 || this._entries.length === 0) {
      return null; // at the top: show newer runs as they arrive
    }
    const index = this._geometry.indexAt(top);
    return { id: this._entries[index].body.id, within: top - this._geometry.offset(index) };
  }

  private _schedulePaint(): void {
    if (this._frame === 0) {
      this._frame = requestAnimationFrame(() => {
        this._frame = 0;
        this._paint();
      });
    }
  }

  private _clearDrawn(): void {
    for (const row of this._drawn.values()) {
      row.remove();
    }
    this._drawn.clear();
  }

  /** Put the rows intersecting the viewport into the DOM, drop the others. */
  private _paint(): void {
    const node = this.node;
    const width = this._spacer.clientWidth - ROW_INSET_PX;
    if (width !== this._textWidth) {
      this._textWidth = width;
      this._clearDrawn(); // rows fit their text to the width: redraw them at the new one
    }
    if (!this._fonts && node.isConnected) {
      const [code, problem] = [...this._probe.children].map(strip => TextFitter.fontOf(strip));
      this._fonts = { code, problem };
    }
    // Never more than a window's height: a list laid out before its panel has a size can
    // briefly be as tall as its content, and drawing 10,000 rows then would hang the page.
    const viewport = Math.min(node.clientHeight || window.innerHeight, window.innerHeight);
    const { start, end } = this._geometry.range(node.scrollTop, viewport, OVERSCAN_PX);
    for (const [index, row] of this._drawn) {
      if (index < start || index >= end) {
        row.remove();
        this._drawn.delete(index);
      }
    }
    const selected = this._model?.selected ?? null;
    for (let index = start; index < end; index++) {
      let row = this._drawn.get(index);
      if (!row) {
        row = this._rowElement(index);
        this._drawn.set(index, row);
        this._spacer.appendChild(row);
      }
      const isSelected = this._entries[index].body.id === selected;
      row.classList.toggle('nbgov-mod-selected', isSelected);
      row.setAttribute('aria-selected', String(isSelected));
    }
    const index = this._selectedIndex();
    if (index >= start && index < end) {
      node.setAttribute('aria-activedescendant', rowDomId(index));
    } else {
      node.removeAttribute('aria-activedescendant');
    }
  }

  private _row(index: number): TimelineRow {
    const entry = this._entries[index];
    let row = this._rows.get(entry.body.id);
    if (!row) {
      row = timelineRow(entry, this._stale, this._strips[index]);
      this._rows.set(entry.body.id, row);
    }
    return row;
  }

  private _rowElement(index: number): HTMLElement {
    const entry = this._entries[index];
    const body = entry.body;
    const row = this._row(index);
    const node = el('div', 'nbgov-Timeline-row');
    node.id = rowDomId(index);
    node.dataset.id = body.id;
    node.setAttribute('role', 'option');
    node.setAttribute('aria-posinset', String(index + 1));
    node.setAttribute('aria-setsize', String(this._entries.length));
    node.style.top = `${this._geometry.offset(index)}px`;
    node.style.height = `${this._geometry.height(index)}px`;
    node.title = row.tooltip;
    node.classList.toggle('nbgov-mod-error', !row.ok);
    node.classList.toggle('nbgov-mod-stale', row.stale !== null);
    if (row.session) {
      node.appendChild(el('div', 'nbgov-row-session', row.session));
    }

    const main = el('div', 'nbgov-row-main');
    main.appendChild(el('span', 'nbgov-count', row.count));
    const status = el('span', `nbgov-status ${row.ok ? 'nbgov-ok' : 'nbgov-error'}`, row.ok ? 'ok' : 'error');
    if (body.error) {
      status.title = `${body.error.type}: ${body.error.message}`;
    }
    main.appendChild(status);
    if (row.stale) {
      const mark = el('span', 'nbgov-stale', 'stale');
      mark.title = row.stale;
      main.appendChild(mark);
    }
    main.appendChild(el('span', 'nbgov-cell', cellLabel(body.cell_id ? this._cells.get(body.cell_id) : null)));
    main.appendChild(el('span', 'nbgov-time', clock(body.started)));
    main.appendChild(el('span', 'nbgov-duration', duration(body.duration_s)));
    node.appendChild(main);
    node.appendChild(el('div', `nbgov-snippet${row.sql ? ' nbgov-mod-sql' : ''}`, this._fit(row.preview, 'code') || ' '));
    if (row.error) {
      node.appendChild(el('div', 'nbgov-row-problem nbgov-row-error', this._fit(row.error, 'problem')));
    }
    if (row.stale) {
      node.appendChild(el('div', 'nbgov-row-problem nbgov-row-stale', this._fit(row.stale, 'problem')));
    }
    return node;
  }

  /** `text` cut at a word boundary to the row's width (CSS ellipsis stays as a fallback). */
  private _fit(text: string, font: 'code' | 'problem'): string {
    const fonts = this._fonts;
    return fonts && this._textWidth > 0 ? this._fitter.fit(text, this._textWidth, fonts[font]) : text;
  }

  private _selectedIndex(): number {
    const selected = this._model?.selected;
    return selected ? this._index.get(selected) ?? -1 : -1;
  }

  private _onClick(ev: MouseEvent): void {
    const row = (ev.target as Element | null)?.closest?.('.nbgov-Timeline-row') as HTMLElement | null;
    const id = row?.dataset.id;
    if (id) {
      this._activate(id, true);
    }
  }

  private _onKey(ev: KeyboardEvent): void {
    const n = this._entries.length;
    if (n === 0) {
      return;
    }
    const current = this._selectedIndex();
    const page = Math.max(1, Math.floor(this.node.clientHeight / (this._geometry.total / n)) - 1);
    const moves: Record<string, number> = {
      ArrowDown: current + 1,
      ArrowUp: current - 1,
      PageDown: current + page,
      PageUp: current - page,
      Home: 0,
      End: n - 1
    };
    if (ev.key === 'Enter' && current >= 0) {
      this._activate(this._entries[current].body.id, true);
    } else if (ev.key in moves) {
      const relative = ev.key !== 'Home' && ev.key !== 'End';
      const next = Math.min(n - 1, Math.max(0, current < 0 && relative ? 0 : moves[ev.key]));
      this._activate(this._entries[next].body.id, false);
    } else {
      return;
    }
    ev.preventDefault();
  }

  private _activate(id: string, jump: boolean): void {
    const model = this._model;
    if (model) {
      model.select(id);
      if (jump) {
        model.jumpTo(id);
      }
    }
  }
}

function rowDomId(index: number): string {
  return `nbgov-timeline-row-${index}`;
}
