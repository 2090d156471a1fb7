/**
 * Lineage of one open notebook: receives entries from its kernel (live comms and
 * catch-up requests), keeps them deduplicated, and writes them into the notebook and
 * cell metadata so a normal save persists them.
 *
 * A cell's reference to its latest entry is written at once (a small value). The
 * notebook-level log is one metadata value that JupyterLab copies and compares whole on
 * every write, so it is written once per burst of entries (at most WRITE_DELAY_MS after
 * the first of them) and always just before the notebook is saved: a Run All of many
 * cells costs a few writes, not one per cell.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';
import { LineageLog, sidecarFor, staleToShow } from './log';
import { Parsed, parseEntry, parseNotebookMeta, parseStale } from './parse';
import { ExecutionEntry, META_KEY, NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA, StaleMap } from './types';
import { cellReference, isOwnCellMeta } from './compact';

export const ENTRY_TARGET = 'nbgov.lineage';
export const SYNC_TARGET = 'nbgov.lineage.sync';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

/** How long new entries may wait before the notebook-level log is written (ms). */
export const WRITE_DELAY_MS = 300;

export class NotebookLineageModel implements IDisposable {
  private _log = new LineageLog();
  /** Messages about ignored (malformed or foreign) lineage, shown by the panel. */
  readonly notices: string[] = [];
  private _changed = new Signal<this, void>(this);
  private _selectionChanged = new Signal<this, string | null>(this);
  /** Entry hash -> its line in the notebook (the compact line the kernel built). */
  private _raw = new Map<string, string>();
  private _foreign = false;
  /** Stale flags from the kernel's one rule (latest message), and as saved in the notebook. */
  private _kernelStale: StaleMap | null = null;
  private _savedStale: StaleMap = new Map();
  private _savedSidecar: string | null = null;
  private _path: string;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _selected: string | null = null;
  private _disposed = false;
  /** Set while this model writes the notebook metadata, to tell its own writes apart. */
  private _writing = false;
  /** The pending write of the notebook-level log (a timer), or 0. */
  private _writeTimer = 0;

  constructor(readonly panel: NotebookPanel) {
    this._path = panel.context.path;
    panel.sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    panel.context.pathChanged.connect(this._onPathChanged, this);
    panel.context.saveState.connect(this._onSaveState, this);
    void panel.context.ready.then(() => {
      if (this._disposed) {
        return;
      }
      this._loadMetadata();
      panel.context.model.metadataChanged.connect(this._onMetadataChanged, this);
      this._attach(panel.sessionContext.session?.kernel ?? null);
    });
  }

  /** The log shown: the notebook's metadata plus what its kernel reported. */
  get log(): LineageLog {
    return this._log;
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
          const lines = Array.isArray(data.lines) ? data.lines : [];
          this.receive(data.session ? [data.session, ...entries] : entries, data.stale, lines);
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
   * `stale` is the kernel's map of the whole log (it replaces the previous one); `lines`
   * are the compact lines the kernel built for those entries, placed in the notebook as
   * they are (an entry without one is kept whole, which readers also accept).
   */
  receive(rawEntries: unknown[], stale?: unknown, lines: unknown[] = []): void {
    const parsed: Parsed[] = [];
    let bad = 0;
    for (const [index, raw] of rawEntries.entries()) {
      const { entry } = parseEntry(raw);
      const line = lines[index];
      if (entry) {
        parsed.push({ entry, raw: typeof line === 'string' ? line : JSON.stringify(raw) });
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
    window.clearTimeout(this._writeTimer);
    this._writeTimer = 0;
    if (!this.panel.context.isDisposed) {
      this.panel.context.model.metadataChanged.disconnect(this._onMetadataChanged, this);
    }
    this._attach(null);
    Signal.clearData(this);
  }

  private _merge(parsed: Parsed[]): ExecutionEntry[] {
    const raws = new Map(parsed.map(p => [p.entry.hash, p.raw]));
    const added = this._log.merge(parsed.map(p => p.entry));
    for (const entry of added) {
      this._raw.set(entry.hash, raws.get(entry.hash) ?? '');
    }
    return added.filter((e): e is ExecutionEntry => e.kind === 'execution');
  }

  /**
   * Someone else changed the notebook's lineage metadata: the file was reloaded from
   * disk (File ▸ Reload), a collaborator edited it, or the metadata editor did. Start
   * again from what the notebook now says, then catch up with the kernel's session.
   */
  private _onMetadataChanged(_: unknown, change: { key: string }): void {
    if (this._writing || change.key !== META_KEY) {
      return;
    }
    // the kernel's catch-up below sends again what a pending write would have saved
    window.clearTimeout(this._writeTimer);
    this._writeTimer = 0;
    this._log = new LineageLog();
    this._raw.clear();
    this.notices.length = 0;
    this._loadMetadata();
    if (this._selected && !this._log.byId(this._selected)) {
      this.select(null);
    }
    this.requestLog();
  }

  private _loadMetadata(): void {
    const model = this.panel.context.model;
    const meta = parseNotebookMeta(model.getMetadata(META_KEY), NOTEBOOK_SCHEMA, OLD_NOTEBOOK_SCHEMA);
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
      if (this._writeTimer === 0) {
        this._writeTimer = window.setTimeout(() => this._flush(), WRITE_DELAY_MS);
      }
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
      if (!isOwnCellMeta(cell.getMetadata(META_KEY))) {
        continue; // someone else's key: leave it alone
      }
      cell.setMetadata(META_KEY, cellReference(entry.hash));
    }
  }

  /** Write the notebook-level log now, if a write is pending. */
  private _flush(): void {
    if (this._writeTimer === 0) {
      return;
    }
    window.clearTimeout(this._writeTimer);
    this._writeTimer = 0;
    if (this._disposed || this._foreign) {
      return;
    }
    const entries = [...this.log.sessions, ...this.log.executions].sort((a, b) => a.seq - b.seq);
    this._writing = true;
    try {
      this.panel.context.model.setMetadata(META_KEY, {
        log: entries.map(e => this._raw.get(e.hash)) as Json,
        schema: NOTEBOOK_SCHEMA,
        sidecar: this._savedSidecar,
        stale: Object.fromEntries(this._savedStale) as Json
      });
    } finally {
      this._writing = false;
    }
  }

  /** A save is starting: what it serializes must hold every entry received so far. */
  private _onSaveState(_: unknown, state: string): void {
    if (state === 'started') {
      this._flush();
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
    try {
      if (data && data.type === 'entry') {
        this.receive([data.entry], data.stale, [data.line]);
      } else if (data && data.type === 'hello') {
        this._adoptOldLog(); // nbgov was just loaded in the kernel: before its first record
      }
    } finally {
      if (data && data.once === true && !comm.isDisposed) {
        comm.dispose(); // the opening was the whole message: no close follows (nbgov/lineage/delivery.py)
      }
    }
  };
}

function sameStale(a: StaleMap, b: StaleMap): boolean {
  return a.size === b.size && [...a].every(([id, reasons]) => b.get(id)?.join('\n') === reasons.join('\n'));
}
