/** Executions newest first, a page at a time (usable with thousands of runs). */
import { cellLabel, clock, duration, el } from './dom';
import { NotebookLineageModel } from './model';
import { LineageView } from './view';

export const PAGE_SIZE = 100;

export class TimelineView extends LineageView {
  private _shown = PAGE_SIZE;

  constructor() {
    super('nbgov-Timeline');
  }

  setModel(model: NotebookLineageModel | null): void {
    this._shown = PAGE_SIZE; // a new notebook starts at the first page
    super.setModel(model);
  }

  render(): void {
    const node = this.node;
    node.replaceChildren();
    const model = this._model;
    if (!model) {
      return;
    }
    const all = model.log.executions;
    if (all.length === 0) {
      node.appendChild(
        el('p', 'nbgov-empty', 'No executions recorded yet. Run `%load_ext nbgov` in this notebook, then run cells.')
      );
      return;
    }
    const stale = model.stale();
    const cells = model.cellIndexes();
    const list = el('ol', 'nbgov-Timeline-list');
    list.setAttribute('aria-label', 'Executions, newest first');
    const count = Math.min(this._shown, all.length);
    for (let k = 0; k < count; k++) {
      const entry = all[all.length - 1 - k];
      const body = entry.body;
      const row = el('li', 'nbgov-Timeline-row');
      row.dataset.id = body.id;
      row.tabIndex = 0;
      if (body.id === model.selected) {
        row.classList.add('nbgov-mod-selected');
      }
      const main = el('div', 'nbgov-row-main');
      main.appendChild(el('span', 'nbgov-count', `[${body.execution_count ?? ' '}]`));
      main.appendChild(el('span', 'nbgov-cell', cellLabel(body.cell_id ? cells.get(body.cell_id) : null)));
      const ok = body.status === 'ok';
      const status = el('span', `nbgov-status ${ok ? 'nbgov-ok' : 'nbgov-error'}`, ok ? 'ok' : 'error');
      if (body.error) {
        status.title = `${body.error.type}: ${body.error.message}`;
      }
      main.appendChild(status);
      const reasons = stale.get(body.id);
      if (reasons) {
        const mark = el('span', 'nbgov-stale', 'stale');
        mark.title = reasons.join('\n');
        main.appendChild(mark);
      }
      row.appendChild(main);
      const meta = el('div', 'nbgov-row-meta');
      meta.appendChild(el('span', 'nbgov-time', clock(body.started)));
      meta.appendChild(el('span', 'nbgov-duration', duration(body.duration_s)));
      meta.appendChild(el('span', 'nbgov-snippet', firstLine(body.code)));
      row.appendChild(meta);
      row.addEventListener('click', () => this._activate(body.id));
      row.addEventListener('keydown', ev => {
        if (ev.key === 'Enter') {
          this._activate(body.id);
        }
      });
      list.appendChild(row);
    }
    node.appendChild(list);
    if (count < all.length) {
      const more = el('button', 'jp-Button nbgov-more', `Show ${Math.min(PAGE_SIZE, all.length - count)} older (${all.length - count} not shown)`);
      more.addEventListener('click', () => {
        this._shown += PAGE_SIZE;
        this.render();
      });
      node.appendChild(more);
    }
  }

  private _activate(id: string): void {
    const model = this._model;
    if (model) {
      model.select(id);
      model.jumpTo(id);
    }
  }
}

/** The first non-empty line of code, shortened: enough to recognise the cell. */
function firstLine(code: string): string {
  const line = code.split('\n').find(l => l.trim() !== '') ?? '';
  return line.length > 60 ? `${line.slice(0, 59)}…` : line;
}
