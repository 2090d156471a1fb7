/**
 * Lineage of one open notebook: receives entries from its kernel (live comms and
 * catch-up requests), keeps them deduplicated, and writes them into the notebook and
 * cell metadata so a normal save persists them.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';
import { LineageLog, sidecarFor, staleToShow } from './log';
import { Parsed, parseEntry, parseNotebookMeta, parseStale } from './parse';
import { CELL_SCHEMA, ExecutionEntry, META_KEY, NOTEBOOK_SCHEMA, StaleMap } from './types';

export const ENTRY_TARGET = 'nbgov.lineage';
export const SYNC_TARGET = 'nbgov.lineage.sync';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

export class NotebookLineageModel implements IDisposable {
  readonly log = new LineageLog();
  /** Messages about ignored (malformed or foreign) lineage, shown by the panel. */
  readonly notices: string[] = [];
  private _changed = new Signal<this, void>(this);
  private _selectionChanged = new Signal<this, string | null>(this);
  private _raw = new Map<string, unknown>();
  private _foreign = false;
  /** Stale flags from the kernel's one rule (latest message), and as saved in the notebook. */
  private _kernelStale: StaleMap | null = null;
  private _savedStale: StaleMap = new Map();
  private _savedSidecar: string | null = null;
  private _path: string;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _selected: string | null = null;
  private _disposed = false;

  constructor(readonly panel: NotebookPanel) {
    this._path = panel.context.path;
    panel.sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    panel.context.pathChanged.connect(this._onPathChanged, this);
    void panel.context.ready.then(() => {
      if (this._disposed) {
        return;
      }
      this._loadMetadata();
      this._attach(panel.sessionContext.session?.kernel ?? null);
    });
  }

  /** Emitted when entries, stale flags or notices change. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get selectionChanged(): ISignal<this, string | null> {
    return this._selectionChanged;
  }

  get selected(): string | null {
    return this._selected;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  get path(): string {
    return this.panel.context.path;
  }

  /** Stale reasons per execution id, as the kernel's stale rule gives them (or as saved). */
  stale(): StaleMap {
    return staleToShow(this._kernelStale, this._savedStale);
  }

  select(id: string | null): void {
    if (id !== this._selected) {
      this._selected = id;
      this._selectionChanged.emit(id);
    }
  }

  /** Index of the cell with this id in the notebook now, or -1. */
  cellIndex(cellId: string | null): number {
    const cells = this.panel.content.model?.cells;
    if (!cellId || !cells) {
      return -1;
    }
    for (let i = 0; i < cells.length; i++) {
      if (cells.get(i).id === cellId) {
        return i;
      }
    }
    return -1;
  }

  /** Map of cell id to index, for views that label many executions at once. */
  cellIndexes(): Map<string, number> {
    const out = new Map<string, number>();
    const cells = this.panel.content.model?.cells;
    for (let i = 0; cells && i < cells.length; i++) {
      out.set(cells.get(i).id, i);
    }
    return out;
  }

  /** The cell's current source, or null when the cell is gone. */
  currentCode(cellId: string | null): string | null {
    const index = this.cellIndex(cellId);
    return index < 0 ? null : this.panel.content.model!.cells.get(index).sharedModel.getSource();
  }

  /** Scroll the notebook to an execution's cell and make it the active, selected cell. */
  jumpTo(id: string): boolean {
    const entry = this.log.byId(id);
    const index = entry ? this.cellIndex(entry.body.cell_id) : -1;
    if (index < 0) {
      return false;
    }
    const notebook = this.panel.content;
    notebook.activeCellIndex = index;
    notebook.deselectAll();
    void notebook.scrollToItem(index, 'center');
    return true;
  }

  /** Ask the kernel for the whole session log (catch-up after connect or reload). */
  requestLog(): void {
    const kernel = this._kernel;
    if (!kernel || kernel.isDisposed || kernel.connectionStatus !== 'connected') {
      return;
    }
    try {
      const comm = kernel.createComm(SYNC_TARGET);
      comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
        const data = msg.content.data as Json;
        if (data && data.type === 'log') {
          const entries = Array.isArray(data.entries) ? data.entries : [];
          this.receive(data.session ? [data.session, ...entries] : entries, data.stale);
          if (!comm.isDisposed) {
            comm.close();
          }
        }
      };
      comm.open({ type: 'request_log' });
    } catch (err) {
      console.warn('nbgov: could not request the lineage log', err);
    }
  }

  /**
   * Take entries from the kernel: validate, deduplicate, persist into metadata, notify.
   * `stale` is the kernel's map of the whole log (it replaces the previous one).
   */
  receive(rawEntries: unknown[], stale?: unknown): void {
    const parsed: Parsed[] = [];
    let bad = 0;
    for (const raw of rawEntries) {
      const { entry } = parseEntry(raw);
      if (entry) {
        parsed.push({ entry, raw });
      } else {
        bad += 1;
      }
    }
    if (bad > 0) {
      this.notices.push(`${bad} malformed lineage entr${bad === 1 ? 'y' : 'ies'} from the kernel ignored.`);
    }
    const added = this._merge(parsed);
    if (stale !== undefined) {
      this._kernelStale = parseStale(stale);
    }
    if (added.length > 0 || (stale !== undefined && !sameStale(this.stale(), this._savedStale))) {
      this._persist(added);
    }
    if (added.length > 0 || stale !== undefined || bad > 0) {
      this._changed.emit();
    }
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._attach(null);
    Signal.clearData(this);
  }

  private _merge(parsed: Parsed[]): ExecutionEntry[] {
    const raws = new Map(parsed.map(p => [p.entry.hash, p.raw]));
    const added = this.log.merge(parsed.map(p => p.entry));
    for (const entry of added) {
      this._raw.set(entry.hash, raws.get(entry.hash));
    }
    return added.filter((e): e is ExecutionEntry => e.kind === 'execution');
  }

  private _loadMetadata(): void {
    const model = this.panel.context.model;
    const meta = parseNotebookMeta(model.getMetadata(META_KEY), NOTEBOOK_SCHEMA);
    this._foreign = meta.foreign;
    this.notices.push(...meta.notices);
    this._savedStale = meta.stale;
    this._savedSidecar = meta.sidecar;
    this._merge(meta.entries);
    this._changed.emit();
  }

  private _persist(added: ExecutionEntry[]): void {
    const model = this.panel.context.model;
    if (this._foreign) {
      if (!this.notices.some(n => n.startsWith('New lineage'))) {
        this.notices.push('New lineage is shown here but not saved into the notebook (foreign metadata).');
      }
    } else {
      this._savedStale = this.stale();
      this._savedSidecar = sidecarFor(this.path);
      model.setMetadata(META_KEY, {
        schema: NOTEBOOK_SCHEMA,
        sidecar: this._savedSidecar,
        sessions: this.log.sessions.map(e => this._raw.get(e.hash)) as Json,
        log: this.log.executions.map(e => this._raw.get(e.hash)) as Json,
        stale: Object.fromEntries(this._savedStale) as Json
      });
    }
    const latest = this.log.latestByCell();
    for (const entry of added) {
      const cellId = entry.body.cell_id;
      if (!cellId || latest.get(cellId) !== entry) {
        continue;
      }
      const index = this.cellIndex(cellId);
      if (index < 0) {
        continue;
      }
      const cell = model.cells.get(index);
      const current = cell.getMetadata(META_KEY) as Json;
      if (current !== undefined && (current === null || current.schema !== CELL_SCHEMA)) {
        continue; // someone else's key: leave it alone
      }
      cell.setMetadata(META_KEY, { schema: CELL_SCHEMA, latest: this._raw.get(entry.hash) as Json });
    }
  }

  private _onKernelChanged(): void {
    this._attach(this.panel.sessionContext.session?.kernel ?? null);
  }

  private _attach(kernel: Kernel.IKernelConnection | null): void {
    const old = this._kernel;
    if (old === kernel) {
      return;
    }
    if (old && !old.isDisposed) {
      old.removeCommTarget(ENTRY_TARGET, this._onEntryComm);
      old.connectionStatusChanged.disconnect(this._onConnection, this);
      old.statusChanged.disconnect(this._onStatus, this);
    }
    this._kernel = kernel;
    if (!kernel) {
      return;
    }
    kernel.registerCommTarget(ENTRY_TARGET, this._onEntryComm);
    kernel.connectionStatusChanged.connect(this._onConnection, this);
    kernel.statusChanged.connect(this._onStatus, this);
    this.requestLog();
    this._adoptOldLog();
  }

  /** Renamed while no kernel recorded: the log under the old name continues here. */
  private _adoptOldLog(): void {
    if (this._savedSidecar !== null && this._savedSidecar !== sidecarFor(this.path)) {
      this._tellPath({ path: this.path, previous: this.path, sidecar: this._savedSidecar });
    }
  }

  /** The notebook was renamed or moved: the kernel records next to it from now on. */
  private _onPathChanged(): void {
    const previous = this._path;
    this._path = this.panel.context.path;
    this._tellPath({ path: this._path, previous });
    if (this.log.size > 0) {
      this._persist([]); // the metadata names the sidecar under the new name
    }
  }

  private _tellPath(data: { path: string; previous: string; sidecar?: string }): void {
    const kernel = this._kernel;
    if (!kernel || kernel.isDisposed || kernel.connectionStatus !== 'connected') {
      return;
    }
    try {
      const comm = kernel.createComm(SYNC_TARGET);
      comm.onMsg = () => {
        if (!comm.isDisposed) {
          comm.close();
        }
      };
      comm.open({ type: 'notebook_path', ...data });
    } catch (err) {
      console.warn('nbgov: could not tell the kernel the notebook moved', err);
    }
  }

  private _onConnection(_: Kernel.IKernelConnection, status: Kernel.ConnectionStatus): void {
    if (status === 'connected') {
      this.requestLog();
    }
  }

  private _onStatus(_: Kernel.IKernelConnection, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      this._kernelStale = null; // until the new kernel answers, show what was saved
      this._changed.emit();
    }
  }

  private _onEntryComm = (comm: Kernel.IComm, msg: KernelMessage.ICommOpenMsg): void => {
    const data = msg.content.data as Json;
    if (data && data.type === 'entry') {
      this.receive([data.entry], data.stale);
    } else if (data && data.type === 'hello') {
      this._adoptOldLog(); // nbgov was just loaded in the kernel: before its first record
    }
  };
}

function sameStale(a: StaleMap, b: StaleMap): boolean {
  return a.size === b.size && [...a].every(([id, reasons]) => b.get(id)?.join('\n') === reasons.join('\n'));
}
