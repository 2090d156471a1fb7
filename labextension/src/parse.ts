/**
 * Turn untrusted JSON (notebook metadata, kernel messages) into typed entries.
 * Anything malformed is rejected (null), never half-accepted, so views can trust shapes.
 */
import {
  ExecutionBody,
  ExecutionEntry,
  FileUse,
  Fingerprint,
  LineageEntry,
  ModelUse,
  ReadUse,
  SessionEntry,
  SqlUse,
  WriteUse
} from './types';
import { expandLines } from './compact';

type Obj = Record<string, unknown>;

class Malformed extends Error {}

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function obj(x: unknown, what: string): Obj {
  if (!isObj(x)) {
    throw new Malformed(`${what}: expected an object`);
  }
  return x;
}

function str(x: unknown, what: string): string {
  if (typeof x !== 'string') {
    throw new Malformed(`${what}: expected a string`);
  }
  return x;
}

function optStr(x: unknown, what: string): string | null {
  return x === null || x === undefined ? null : str(x, what);
}

function optNum(x: unknown, what: string): number | null {
  if (x === null || x === undefined) {
    return null;
  }
  if (typeof x !== 'number' || !isFinite(x)) {
    throw new Malformed(`${what}: expected a number`);
  }
  return x;
}

function list<T>(x: unknown, what: string, item: (v: unknown) => T): T[] {
  if (x === undefined || x === null) {
    return [];
  }
  if (!Array.isArray(x)) {
    throw new Malformed(`${what}: expected a list`);
  }
  return x.map(item);
}

function strList(x: unknown, what: string): string[] {
  return list(x, what, v => str(v, what));
}

function fingerprint(x: unknown): Fingerprint {
  if (x === undefined || x === null) {
    return { kind: '', hash: null, weak: true, summary: '', reason: 'not recorded' };
  }
  const o = obj(x, 'fingerprint');
  return {
    kind: optStr(o.kind, 'fingerprint.kind') ?? '',
    hash: optStr(o.hash, 'fingerprint.hash'),
    weak: o.weak === true,
    summary: optStr(o.summary, 'fingerprint.summary') ?? '',
    reason: optStr(o.reason, 'fingerprint.reason')
  };
}

function read(x: unknown): ReadUse {
  const o = obj(x, 'read');
  return {
    name: str(o.name, 'read.name'),
    fingerprint: fingerprint(o.fingerprint),
    source: optStr(o.source, 'read.source')
  };
}

function write(x: unknown): WriteUse {
  const o = obj(x, 'write');
  return {
    name: str(o.name, 'write.name'),
    fingerprint: fingerprint(o.fingerprint),
    mutated: o.mutated === true
  };
}

function file(x: unknown): FileUse {
  const o = obj(x, 'file');
  const path = str(o.path, 'file.path');
  const mode = str(o.mode, 'file.mode');
  const size = optNum(o.size, 'file.size');
  const hash = optStr(o.hash, 'file.hash');
  // The kernel writes `removed` only when true (nbgov/lineage/record.py): any other value,
  // null included, is not its record, and neither is a "removed" file with content.
  const removed = 'removed' in o;
  if (removed && o.removed !== true) {
    throw new Malformed('file.removed: expected true or absent');
  }
  if (removed && (mode !== 'write' || size !== null || hash !== null)) {
    throw new Malformed('file.removed: a removed file is a write with no size and no hash');
  }
  return {
    path,
    abspath: optStr(o.abspath, 'file.abspath') ?? path,
    mode,
    size,
    hash,
    source: optStr(o.source, 'file.source'),
    removed
  };
}

function model(x: unknown, created: Set<string>): ModelUse {
  const o = obj(x, 'model');
  const name = str(o.name, 'model.name');
  const version = optNum(o.version, 'model.version');
  const role = optStr(o.role, 'model.role');
  if (role !== null && role !== 'input' && role !== 'output' && role !== 'dropped') {
    throw new Malformed('model.role: expected "input", "output" or "dropped"');
  }
  return {
    name,
    version,
    sha256: optStr(o.sha256, 'model.sha256') ?? '',
    producer: optStr(o.producer, 'model.producer'),
    opset: optNum(o.opset, 'model.opset'),
    source: optStr(o.source, 'model.source'),
    // logs written before roles: a version the record's CREATE MODEL names is its output
    role: role ?? (created.has(`${name}@${version}`) ? 'output' : 'input')
  };
}

function sql(x: unknown): SqlUse {
  const o = obj(x, 'sql');
  return {
    statement: str(o.statement, 'sql.statement'),
    kind: optStr(o.kind, 'sql.kind') ?? '',
    tables_read: strList(o.tables_read, 'sql.tables_read'),
    tables_written: strList(o.tables_written, 'sql.tables_written'),
    files_read: strList(o.files_read, 'sql.files_read'),
    files_written: strList(o.files_written, 'sql.files_written'),
    models: strList(o.models, 'sql.models')
  };
}

function packages(x: unknown): Record<string, string> {
  if (x === undefined || x === null) {
    return {};
  }
  const o = obj(x, 'packages_added');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(o)) {
    out[k] = str(v, 'packages_added');
  }
  return out;
}

function executionBody(x: unknown): ExecutionBody {
  const o = obj(x, 'body');
  let error: ExecutionBody['error'] = null;
  if (o.error !== null && o.error !== undefined) {
    const e = obj(o.error, 'error');
    error = { type: str(e.type, 'error.type'), message: optStr(e.message, 'error.message') ?? '' };
  }
  const statements = list(o.sql, 'sql', sql);
  const created = new Set(statements.filter(s => s.kind === 'create_model').flatMap(s => s.models));
  return {
    schema: str(o.schema, 'schema'),
    id: str(o.id, 'id'),
    session: str(o.session, 'session'),
    execution_count: optNum(o.execution_count, 'execution_count'),
    cell_id: optStr(o.cell_id, 'cell_id'),
    code: str(o.code, 'code'),
    code_hash: optStr(o.code_hash, 'code_hash') ?? '',
    started: optStr(o.started, 'started') ?? '',
    duration_s: optNum(o.duration_s, 'duration_s'),
    status: str(o.status, 'status'),
    error,
    result: o.result === undefined || o.result === null ? null : fingerprint(o.result),
    reads: list(o.reads, 'reads', read),
    writes: list(o.writes, 'writes', write),
    deletes: strList(o.deletes, 'deletes'),
    files: list(o.files, 'files', file),
    models: list(o.models, 'models', m => model(m, created)),
    sql: statements,
    packages_added: packages(o.packages_added)
  };
}

/** A validated entry, or null with the reason when `x` is not one. */
export function parseEntry(x: unknown): { entry: LineageEntry | null; problem: string | null } {
  try {
    const o = obj(x, 'entry');
    const seq = optNum(o.seq, 'seq');
    if (seq === null) {
      throw new Malformed('seq: expected a number');
    }
    const head = { seq, prev: str(o.prev, 'prev'), hash: str(o.hash, 'hash') };
    if (o.kind === 'execution') {
      const entry: ExecutionEntry = { ...head, kind: 'execution', body: executionBody(o.body) };
      return { entry, problem: null };
    }
    if (o.kind === 'session') {
      const body = obj(o.body, 'body');
      const entry: SessionEntry = {
        ...head,
        kind: 'session',
        body: { ...body, session: str(body.session, 'session') }
      };
      return { entry, problem: null };
    }
    throw new Malformed('kind: expected "session" or "execution"');
  } catch (err) {
    if (err instanceof Malformed) {
      return { entry: null, problem: err.message };
    }
    throw err;
  }
}

/** A validated entry with the line that stands for it in the notebook (compact, or the whole entry). */
export interface Parsed {
  entry: LineageEntry;
  raw: string;
}

export interface ParsedNotebookMeta {
  entries: Parsed[];
  /** The metadata belongs to something else (or is not an object): never overwrite it. */
  foreign: boolean;
  notices: string[];
  /** Stale flags the kernel's rule gave when the log was last written. */
  stale: Map<string, string[]>;
  /** The sidecar the metadata names (notebook-relative), if any. */
  sidecar: string | null;
}

/**
 * Read notebook.metadata.nbgov, in the compact form (`schema`: one line per entry) or the
 * old one (`oldSchema`: whole entries in sessions and log, kept as whole-entry lines);
 * malformed or foreign content yields notices, not exceptions.
 */
export function parseNotebookMeta(meta: unknown, schema: string, oldSchema: string): ParsedNotebookMeta {
  if (meta === undefined || meta === null) {
    return { entries: [], foreign: false, notices: [], stale: new Map(), sidecar: null };
  }
  if (!isObj(meta) || (meta.schema !== schema && meta.schema !== oldSchema)) {
    return {
      entries: [],
      foreign: true,
      notices: [`Notebook metadata "nbgov" is not an ${schema} log; it was ignored and is left untouched.`],
      stale: new Map(),
      sidecar: null
    };
  }
  const entries: Parsed[] = [];
  const notices: string[] = [];
  let bad = 0;
  let firstProblem = '';
  const take = (item: unknown, line: string) => {
    const { entry, problem } = parseEntry(item);
    if (entry) {
      entries.push({ entry, raw: line });
    } else {
      bad += 1;
      firstProblem = firstProblem || (problem ?? '');
    }
  };
  for (const key of meta.schema === schema ? ['log'] : ['sessions', 'log']) {
    const items = meta[key];
    if (items === undefined) {
      continue;
    }
    if (!Array.isArray(items)) {
      notices.push(`Notebook metadata "nbgov.${key}" is not a list; it was ignored.`);
      continue;
    }
    if (meta.schema === oldSchema) {
      items.forEach(item => take(item, JSON.stringify(item)));
      continue;
    }
    const read = expandLines(items);
    bad += read.bad;
    firstProblem = firstProblem || read.firstProblem;
    read.expanded.forEach(({ entry, line }) => take(entry, line));
  }
  if (bad > 0) {
    notices.push(`${bad} malformed lineage entr${bad === 1 ? 'y' : 'ies'} ignored (first: ${firstProblem}).`);
  }
  const sidecar = typeof meta.sidecar === 'string' ? meta.sidecar : null;
  return { entries, foreign: false, notices, stale: parseStale(meta.stale), sidecar };
}

/** Stale reasons sent by the kernel ({id: [reason]}); anything else yields an empty map. */
export function parseStale(x: unknown): Map<string, string[]> {
  const out = new Map<string, string[]>();
  if (!isObj(x)) {
    return out;
  }
  for (const [id, reasons] of Object.entries(x)) {
    if (Array.isArray(reasons)) {
      out.set(
        id,
        reasons.filter((r): r is string => typeof r === 'string')
      );
    }
  }
  return out;
}
