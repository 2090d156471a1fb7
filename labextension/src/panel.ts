/** The "Lineage" sidebar: follows the active notebook; timeline + details, or graph. */
import { Panel, Widget } from '@lumino/widgets';
import { DetailsView } from './details';
import { el } from './dom';
import { GraphView } from './graph';
import { NotebookLineageModel } from './model';
import { logCounts } from './rows';
import { TimelineView } from './timeline';

type Mode = 'timeline' | 'graph';

export class LineagePanel extends Panel {
  readonly timeline = new TimelineView();
  readonly details = new DetailsView();
  readonly graph = new GraphView();
  private _model: NotebookLineageModel | null = null;
  private _header = new Widget({ node: el('div', 'nbgov-LineagePanel-header') });
  private _title = el('div', 'nbgov-LineagePanel-notebook');
  private _counts = el('div', 'nbgov-LineagePanel-counts');
  private _notices = el('div', 'nbgov-notices');
  private _tabs = new Map<Mode, HTMLButtonElement>();

  constructor() {
    super();
    this.id = 'nbgov-lineage';
    this.addClass('nbgov-LineagePanel');
    this.title.label = 'Lineage';
    this.title.caption = 'Lineage of the active notebook';
    const head = this._header.node;
    const bar = el('div', 'nbgov-LineagePanel-bar');
    const tabs = el('div', 'nbgov-tabs');
    tabs.setAttribute('role', 'group');
    tabs.setAttribute('aria-label', 'View');
    for (const mode of ['timeline', 'graph'] as Mode[]) {
      const button = el('button', 'nbgov-tab', mode === 'timeline' ? 'Timeline' : 'Graph');
      button.dataset.mode = mode;
      button.addEventListener('click', () => this.setMode(mode));
      this._tabs.set(mode, button);
      tabs.appendChild(button);
    }
    bar.append(this._title, tabs);
    head.append(bar, this._counts);
    head.appendChild(this._notices);
    this.addWidget(this._header);
    this.addWidget(this.timeline);
    this.addWidget(this.graph);
    this.addWidget(this.details);
    this.setMode('timeline');
  }

  get model(): NotebookLineageModel | null {
    return this._model;
  }

  setModel(model: NotebookLineageModel | null): void {
    if (this._model === model) {
      return;
    }
    if (this._model && !this._model.isDisposed) {
      this._model.changed.disconnect(this._onChanged, this);
      this._model.selectionChanged.disconnect(this._onSelection, this);
    }
    this._model = model;
    if (model) {
      model.changed.connect(this._onChanged, this);
      model.selectionChanged.connect(this._onSelection, this);
    }
    this.timeline.setModel(model);
    this.details.setModel(model);
    this.graph.setModel(model);
    this._renderHeader();
  }

  setMode(mode: Mode): void {
    for (const [m, button] of this._tabs) {
      button.classList.toggle('nbgov-mod-active', m === mode);
      button.setAttribute('aria-pressed', String(m === mode));
    }
    this.timeline.setHidden(mode !== 'timeline');
    this.graph.setHidden(mode !== 'graph');
    this.graph.render();
  }

  private _renderHeader(): void {
    const model = this._model;
    if (!model) {
      this._title.textContent = 'No notebook is active.';
      this._title.title = '';
      this._counts.textContent = '';
      this._notices.replaceChildren();
      return;
    }
    this._title.textContent = model.path.split('/').pop() ?? model.path;
    this._title.title = model.path;
    const counts = logCounts(model.log.executions, model.log.sessions.length, model.stale().size);
    this._counts.textContent = counts.short;
    this._counts.title = counts.long;
    this._notices.replaceChildren(...model.notices.map(text => el('div', 'nbgov-notice', text)));
  }

  private _onChanged(): void {
    this._renderHeader();
    this.timeline.render();
    this.details.render();
    this.graph.render();
  }

  private _onSelection(): void {
    this.timeline.showSelection();
    this.details.render();
    this.graph.render();
  }
}
