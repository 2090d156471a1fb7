/**
 * The compact notebook form of the log (nbgov.notebook/2), read back into whole entries
 * for display. The kernel builds the compact lines (nbgov/lineage/compact.py, the one
 * definition); the sidebar only places them in the notebook and expands them here when
 * it opens a saved notebook. Verification (hashes) is the CLI's job, not the sidebar's.
 */

type Obj = Record<string, unknown>;
type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const USUAL_VALUES: Obj = {
  schema: 'nbgov.record/1',
  status: 'ok',
  error: null,
  deletes: [],
  files: [],
  models: [],
  sql: [],
  notes: [],
  packages_added: {},
  more_writes: null,
  result: null
};

class CompactError extends Error {}

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function int(x: unknown, where: string): number {
  if (typeof x !== 'number' || !Number.isInteger(x)) {
    throw new CompactError(`${where}: expected an integer`);
  }
  return x;
}

function startedAt(base: unknown, offsetMs: number, where: string): string {
  const time = typeof base === 'string' ? Date.parse(base) : NaN;
  if (isNaN(time)) {
    throw new CompactError(`${where}: the previous entry has no start time`);
  }
  return new Date(time + offsetMs).toISOString();
}

/** The seq a metadata line claims (whole entry: seq; compact: s), or null. */
export function lineSeq(form: unknown): number | null {
  if (!isObj(form)) {
    return null;
  }
  const seq = 'kind' in form ? form.seq : form.s;
  return typeof seq === 'number' && Number.isInteger(seq) && seq >= 0 ? seq : null;
}

function expandExecution(form: Obj, bySeq: Map<number, Json>): Json {
  const seq = int(form.s, 'entry');
  const where = `entry ${seq}`;
  const entry = (n: number): Json => {
    const found = bySeq.get(n);
    if (!found) {
      throw new CompactError(`${where} refers to entry ${n}, which is not in the notebook`);
    }
    return found;
  };
  const missing = new Set(Array.isArray(form.missing) ? form.missing : []);
  const body: Obj = {};
  for (const [key, value] of Object.entries(USUAL_VALUES)) {
    if (!missing.has(key)) {
      body[key] = value;
    }
  }
  let prev: unknown, session: unknown, count: unknown, started: unknown;
  if ('p' in form) {
    [prev, session, count, started] = [form.p, form.sid, form.n, form.at];
  } else {
    const before = entry(seq - 1);
    prev = before.hash;
    session = before.body?.session;
    count = 'n' in form ? form.n : before.kind === 'session' ? 1 : int(before.body?.execution_count, where) + 1;
    started = 'at' in form ? form.at : startedAt(before.body?.started, int(form.t, where), where);
  }
  let code = form.code;
  if (code === undefined && 'same' in form) {
    code = entry(int(form.same, where)).body?.code;
  }
  Object.assign(body, {
    session,
    execution_count: count,
    id: 'id' in form ? form.id : `${session}:${count}`,
    cell_id: form.c ?? null,
    code,
    code_hash: form.ch ?? '',
    started,
    duration_s: form.d ?? null,
    reads: (Array.isArray(form.r) ? form.r : []).map(r => expandRead(r, entry, where)),
    writes: (Array.isArray(form.w) ? form.w : []).map(expandWrite),
    ...(isObj(form.body) ? form.body : {})
  });
  return { seq, prev, hash: form.h, kind: 'execution', body };
}

function expandRead(item: unknown, entry: (n: number) => Json, where: string): unknown {
  if (!Array.isArray(item)) {
    return item;
  }
  const [name, seq] = item;
  const source = entry(int(seq, where));
  const written = (Array.isArray(source.body?.writes) ? source.body.writes : []).find(
    (w: Json) => isObj(w) && w.name === name
  );
  if (!written) {
    throw new CompactError(`${where}: entry ${seq} wrote no ${String(name).slice(0, 40)}`);
  }
  return { name, fingerprint: written.fingerprint, source: source.body.id };
}

function expandWrite(item: unknown): unknown {
  if (!Array.isArray(item)) {
    return item;
  }
  const [name, kind, hash, summary] = item;
  return { name, mutated: false, fingerprint: { hash, kind, summary, weak: false } };
}

export interface ExpandedLine {
  /** The whole entry, as JSON (to be validated by parseEntry). */
  entry: unknown;
  /** The line as stored, to be written back unchanged. */
  line: string;
}

/** Compact lines to whole entries, in seq order; lines that cannot be read are counted. */
export function expandLines(lines: unknown[]): { expanded: ExpandedLine[]; bad: number; firstProblem: string } {
  const forms: { seq: number; form: Obj; line: string }[] = [];
  let bad = 0;
  let firstProblem = '';
  const fail = (why: string) => {
    bad += 1;
    firstProblem = firstProblem || why;
  };
  for (const line of lines) {
    let form: unknown = null;
    try {
      form = typeof line === 'string' ? JSON.parse(line) : null;
    } catch {
      form = null;
    }
    const seq = lineSeq(form);
    if (seq === null || typeof line !== 'string') {
      fail('not a compact entry line');
    } else {
      forms.push({ seq, form: form as Obj, line });
    }
  }
  forms.sort((a, b) => a.seq - b.seq);
  const bySeq = new Map<number, Json>();
  const expanded: ExpandedLine[] = [];
  for (const { seq, form, line } of forms) {
    try {
      const entry = 'kind' in form ? form : expandExecution(form, bySeq);
      if (!bySeq.has(seq)) {
        bySeq.set(seq, entry);
      }
      expanded.push({ entry, line });
    } catch (err) {
      if (!(err instanceof CompactError)) {
        throw err;
      }
      fail(err.message);
    }
  }
  return { expanded, bad, firstProblem };
}

/** A cell's metadata value naming its latest entry (the first 16 hex digits of its hash). */
export function cellReference(hash: string): { latest: string } {
  return { latest: hash.slice(0, 16) };
}

/** Is a cell's metadata value nbgov's own (old copy or compact reference), safe to replace? */
export function isOwnCellMeta(value: unknown): boolean {
  if (value === undefined) {
    return true;
  }
  if (!isObj(value)) {
    return false;
  }
  if (value.schema === 'nbgov.cell/1') {
    return true;
  }
  const keys = Object.keys(value);
  return keys.length === 1 && keys[0] === 'latest' && typeof value.latest === 'string';
}
