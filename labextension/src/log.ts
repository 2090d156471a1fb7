/**
 * The lineage log of one notebook, in memory: deduplicated by entry hash, ordered,
 * with the questions the views ask (latest run per cell, ancestors).
 * Pure logic, no JupyterLab imports, so it is unit-tested under plain Node.
 *
 * Which runs are stale is not decided here: the one stale rule lives in the kernel
 * (nbgov/lineage/stale.py). The sidebar shows the kernel's answer, or, with no kernel,
 * the answer saved in the notebook metadata when the log was last written
 * (`staleToShow`).
 */
import { ExecutionEntry, LineageEntry, SessionEntry, StaleMap } from './types';

export class LineageLog {
  private _sessions: SessionEntry[] = [];
  private _executions: ExecutionEntry[] = [];
  private _hashes = new Set<string>();
  private _sessionOrder = new Map<string, number>();
  private _byId = new Map<string, ExecutionEntry>();

  get sessions(): readonly SessionEntry[] {
    return this._sessions;
  }

  /** Executions oldest first. */
  get executions(): readonly ExecutionEntry[] {
    return this._executions;
  }

  get size(): number {
    return this._executions.length;
  }

  has(hash: string): boolean {
    return this._hashes.has(hash);
  }

  byId(id: string): ExecutionEntry | undefined {
    return this._byId.get(id);
  }

  /** Add entries not seen before (by hash); returns the ones actually added, in order. */
  merge(entries: Iterable<LineageEntry>): LineageEntry[] {
    const added: LineageEntry[] = [];
    for (const entry of entries) {
      if (this._hashes.has(entry.hash)) {
        continue;
      }
      this._hashes.add(entry.hash);
      this._noteSession(entry.kind === 'session' ? entry.body.session : entry.body.session);
      if (entry.kind === 'session') {
        this._sessions.push(entry);
      } else {
        this._executions.push(entry);
        this._byId.set(entry.body.id, entry);
      }
      added.push(entry);
    }
    if (added.length > 0) {
      this._sort();
    }
    return added;
  }

  private _noteSession(session: string): void {
    if (!this._sessionOrder.has(session)) {
      this._sessionOrder.set(session, this._sessionOrder.size);
    }
  }

  private _sort(): void {
    // Sessions in the order first seen; within a session, by sequence number. Stable,
    // so entries that arrive live before a catch-up reply still end up in log order.
    const key = (e: LineageEntry) => this._sessionOrder.get(e.body.session) ?? 0;
    const cmp = (a: LineageEntry, b: LineageEntry) => key(a) - key(b) || a.seq - b.seq;
    this._sessions.sort(cmp);
    this._executions.sort(cmp);
  }

  /** The newest execution of each cell id. */
  latestByCell(): Map<string, ExecutionEntry> {
    const latest = new Map<string, ExecutionEntry>();
    for (const entry of this._executions) {
      if (entry.body.cell_id) {
        latest.set(entry.body.cell_id, entry);
      }
    }
    return latest;
  }

  /** Executions that are the latest run of their cell (or have no cell), oldest first. */
  currentExecutions(): ExecutionEntry[] {
    const latest = this.latestByCell();
    return this._executions.filter(e => !e.body.cell_id || latest.get(e.body.cell_id) === e);
  }

  /** Every execution id that the given one depends on, directly or not; nearest first. */
  ancestors(id: string): Set<string> {
    const seen = new Set<string>();
    const todo = [id];
    for (let next = 0; next < todo.length; next++) {
      const entry = this._byId.get(todo[next]);
      if (!entry) {
        continue;
      }
      const sources = [
        ...entry.body.reads.map(r => r.source),
        ...entry.body.files.map(f => f.source),
        ...entry.body.models.filter(m => m.role === 'input').map(m => m.source)
      ];
      for (const source of sources) {
        if (source && source !== id && !seen.has(source)) {
          seen.add(source);
          todo.push(source);
        }
      }
    }
    return seen;
  }
}

/**
 * Stale flags to show: the kernel's latest answer when a kernel has given one (it judges
 * the whole log, files on disk included), otherwise the flags saved in the notebook.
 */
export function staleToShow(kernel: StaleMap | null, saved: StaleMap): StaleMap {
  return kernel ?? saved;
}

/** First `n` characters of a hash, for display. */
export function shortHash(hash: string | null | undefined, n = 8): string {
  return hash ? hash.slice(0, n) : '—';
}

/** Notebook-relative sidecar path, as the metadata records it. */
export function sidecarFor(notebookPath: string): string {
  const name = notebookPath.split('/').pop() ?? notebookPath;
  const stem = name.replace(/\.ipynb$/, '');
  return `.nbgov/${stem}.jsonl`;
}
