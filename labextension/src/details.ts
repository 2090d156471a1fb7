/** One execution in full: code as run (diffed against the cell now), data, files, models, SQL. */
import { lineDiff } from './diff';
import { cellLabel, clock, duration, el } from './dom';
import { shortHash } from './log';
import { NotebookLineageModel } from './model';
import { ExecutionEntry, Fingerprint } from './types';
import { LineageView } from './view';

export class DetailsView extends LineageView {
  constructor() {
    super('nbgov-Details');
  }

  render(): void {
    this.node.replaceChildren();
    const model = this._model;
    const entry = model && model.selected ? model.log.byId(model.selected) : undefined;
    if (!model || !entry) {
      this.node.appendChild(el('p', 'nbgov-empty', 'Select an execution to see its details.'));
      return;
    }
    this._header(model, entry);
    this._code(model, entry);
    this._data(model, entry);
    this._files(entry);
    this._models(entry);
    this._sql(entry);
  }

  private _header(model: NotebookLineageModel, entry: ExecutionEntry): void {
    const b = entry.body;
    const title = el('h3', 'nbgov-Details-title', `Execution [${b.execution_count ?? ' '}] · ${cellLabel(b.cell_id ? model.cellIndex(b.cell_id) : null)}`);
    this.node.appendChild(title);
    const facts = el('div', 'nbgov-Details-facts');
    facts.appendChild(el('span', '', `${clock(b.started)} · ${duration(b.duration_s)} · `));
    facts.appendChild(el('span', `nbgov-status ${b.status === 'ok' ? 'nbgov-ok' : 'nbgov-error'}`, b.status));
    this.node.appendChild(facts);
    if (b.error) {
      this.node.appendChild(el('pre', 'nbgov-error-text', `${b.error.type}: ${b.error.message}`));
    }
    const reasons = model.stale().get(b.id);
    if (reasons) {
      const box = el('ul', 'nbgov-stale-reasons');
      for (const reason of reasons) {
        box.appendChild(el('li', '', `stale: ${reason}`));
      }
      this.node.appendChild(box);
    }
  }

  private _code(model: NotebookLineageModel, entry: ExecutionEntry): void {
    const b = entry.body;
    this._section('Code as executed');
    this.node.appendChild(el('pre', 'nbgov-code', b.code));
    const now = model.currentCode(b.cell_id);
    if (now !== null && now !== b.code) {
      this._section('Edited since this run (diff: as run → now)');
      const pre = el('pre', 'nbgov-diff');
      for (const line of lineDiff(b.code, now)) {
        const cls = line.op === '+' ? 'nbgov-diff-add' : line.op === '-' ? 'nbgov-diff-del' : 'nbgov-diff-same';
        pre.appendChild(el('div', cls, `${line.op} ${line.text}`));
      }
      this.node.appendChild(pre);
    }
  }

  private _data(model: NotebookLineageModel, entry: ExecutionEntry): void {
    const b = entry.body;
    if (b.reads.length > 0) {
      this._section('Reads');
      const rows = b.reads.map(r => {
        const source = r.source ? model.log.byId(r.source) : undefined;
        const from = r.source ? (source ? `[${source.body.execution_count ?? ' '}]` : r.source) : 'before lineage';
        return [r.name, fp(r.fingerprint), shortHash(r.fingerprint.hash), from];
      });
      const table = this._table(['name', 'value', 'hash', 'from'], rows);
      b.reads.forEach((r, i) => {
        if (r.source && model.log.byId(r.source)) {
          const cell = table.tBodies[0].rows[i].cells[3];
          cell.classList.add('nbgov-link');
          cell.title = 'Show the execution that produced this input';
          cell.addEventListener('click', () => model.select(r.source));
        }
      });
    }
    if (b.writes.length > 0) {
      this._section('Writes');
      this._table(
        ['name', 'value', 'hash', ''],
        b.writes.map(w => [w.name, fp(w.fingerprint), shortHash(w.fingerprint.hash), w.mutated ? 'mutated in place' : ''])
      );
    }
    if (b.deletes.length > 0) {
      this._section('Deletes');
      this.node.appendChild(el('p', 'nbgov-names', b.deletes.join(', ')));
    }
    const pkgs = Object.entries(b.packages_added);
    if (pkgs.length > 0) {
      this._section('Packages first imported');
      this.node.appendChild(el('p', 'nbgov-names', pkgs.map(([n, v]) => `${n} ${v}`).join(', ')));
    }
  }

  private _files(entry: ExecutionEntry): void {
    const files = entry.body.files;
    if (files.length > 0) {
      this._section('Files');
      this._table(
        ['mode', 'path', 'hash', 'size'],
        files.map(f => [f.mode, f.path, shortHash(f.hash), f.size === null ? '—' : `${f.size} B`])
      );
    }
  }

  private _models(entry: ExecutionEntry): void {
    const models = entry.body.models;
    if (models.length > 0) {
      this._section('Models');
      this._table(
        ['model', 'sha256', 'producer', 'opset'],
        models.map(m => [`${m.name}@${m.version ?? '?'}`, shortHash(m.sha256), m.producer ?? '—', m.opset === null ? '—' : String(m.opset)])
      );
    }
  }

  private _sql(entry: ExecutionEntry): void {
    for (const q of entry.body.sql) {
      this._section(`SQL (${q.kind || 'statement'})`);
      this.node.appendChild(el('pre', 'nbgov-code', q.statement));
      const facts: string[] = [];
      const add = (label: string, items: string[]) => items.length > 0 && facts.push(`${label}: ${items.join(', ')}`);
      add('tables read', q.tables_read);
      add('tables written', q.tables_written);
      add('files read', q.files_read);
      add('files written', q.files_written);
      add('models', q.models);
      for (const fact of facts) {
        this.node.appendChild(el('div', 'nbgov-sql-fact', fact));
      }
    }
  }

  private _section(title: string): void {
    this.node.appendChild(el('h4', 'nbgov-Details-section', title));
  }

  private _table(head: string[], rows: string[][]): HTMLTableElement {
    const table = el('table', 'nbgov-table');
    const tr = el('tr');
    head.forEach(h => tr.appendChild(el('th', '', h)));
    table.createTHead().appendChild(tr);
    const body = table.createTBody();
    for (const row of rows) {
      const r = el('tr');
      row.forEach(c => r.appendChild(el('td', '', c)));
      body.appendChild(r);
    }
    this.node.appendChild(table);
    return table;
  }
}

function fp(f: Fingerprint): string {
  const parts = [f.kind, f.summary].filter(Boolean).join(' ');
  return f.weak ? `${parts} (weak)` : parts;
}
