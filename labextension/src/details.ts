/**
 * One execution in full: code as run (diffed against the cell now), the values it read
 * and wrote, files, models and SQL. Built for a narrow panel: each value is a two-line
 * item (name and where it came from; then its type, summary and short hash), single
 * lines end in an ellipsis with the full text on hover, and words are never split.
 */
import { lineDiff } from './diff';
import { cellLabel, clock, duration, el } from './dom';
import { fileItem } from './files';
import { shortHash } from './log';
import { NotebookLineageModel } from './model';
import { ExecutionEntry, Fingerprint, ModelRole } from './types';
import { LineageView } from './view';

/** What the execution did with a model version, as the details list says it. */
const MODEL_VERBS: Record<ModelRole, string> = { input: 'used', output: 'created', dropped: 'dropped' };

/** One value, file or model: a head line (name, and an aside at the right) and a sub line. */
interface Item {
  name: string;
  aside?: HTMLElement | string;
  sub: string;
  /** Drawn as gone (a file the execution removed). */
  removed?: boolean;
}

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
    const where = cellLabel(b.cell_id ? model.cellIndex(b.cell_id) : null);
    const title = el('h3', 'nbgov-Details-title', `Execution [${b.execution_count ?? ' '}] · ${where}`);
    title.title = `cell id: ${b.cell_id ?? '—'}\nexecution: ${b.id}`;
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
    this._items(
      'Reads',
      b.reads.map(r => ({ name: r.name, aside: this._producer(model, r.source), sub: value(r.fingerprint) }))
    );
    const writes: Item[] = b.writes.map(w => ({
      name: w.name,
      aside: w.mutated ? 'in place' : undefined,
      sub: value(w.fingerprint)
    }));
    if (b.result) {
      writes.push({ name: `Out[${b.execution_count ?? ' '}]`, sub: value(b.result) });
    }
    this._items('Writes', writes);
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

  /** "[2]" linking to the execution that wrote an input, or why there is none. */
  private _producer(model: NotebookLineageModel, source: string | null): HTMLElement {
    const producer = source ? model.log.byId(source) : undefined;
    if (!source) {
      const none = el('span', 'nbgov-from', '—');
      none.title = 'Written before lineage recording started';
      return none;
    }
    if (!producer) {
      const unknown = el('span', 'nbgov-from', '?');
      unknown.title = `Written by ${source}, not in this log`;
      return unknown;
    }
    const link = el('button', 'nbgov-from nbgov-link', `[${producer.body.execution_count ?? ' '}]`);
    link.title = 'Show the execution that produced this input';
    link.addEventListener('click', () => model.select(source));
    return link;
  }

  private _files(entry: ExecutionEntry): void {
    this._items('Files', entry.body.files.map(fileItem));
  }

  private _models(entry: ExecutionEntry): void {
    this._items(
      'Models',
      entry.body.models.map(m => ({
        name: `${m.name}@${m.version ?? '?'}`,
        aside: MODEL_VERBS[m.role],
        sub: [`sha256 ${shortHash(m.sha256)}`, m.producer, m.opset === null ? null : `opset ${m.opset}`]
          .filter(Boolean)
          .join(' · ')
      }))
    );
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

  private _items(title: string, items: Item[]): void {
    if (items.length === 0) {
      return;
    }
    this._section(title);
    const list = el('ul', 'nbgov-items');
    list.setAttribute('aria-label', title);
    for (const item of items) {
      const li = el('li', item.removed ? 'nbgov-item nbgov-mod-removed' : 'nbgov-item');
      const head = el('div', 'nbgov-item-head');
      const name = el('span', 'nbgov-item-name', item.name);
      name.title = item.name;
      head.appendChild(name);
      if (item.aside !== undefined) {
        head.appendChild(typeof item.aside === 'string' ? el('span', 'nbgov-item-aside', item.aside) : item.aside);
      }
      const sub = el('div', 'nbgov-item-sub', item.sub);
      sub.title = item.sub;
      li.append(head, sub);
      list.appendChild(li);
    }
    this.node.appendChild(list);
  }
}

/** "pandas.DataFrame 4 rows × 3 columns · 4958adf8", marked when the hash cannot prove equality.
 * A summary that only repeats the kind (a class nbgov has nothing more to say of) is shown once. */
function value(f: Fingerprint): string {
  const parts = [f.kind, f.summary === f.kind ? '' : f.summary].filter(Boolean).join(' ');
  const weak = f.weak ? ` · weak${f.reason ? `: ${f.reason}` : ''}` : '';
  return `${parts} · ${shortHash(f.hash)}${weak}`;
}
