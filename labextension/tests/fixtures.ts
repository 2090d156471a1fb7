/** Small hand-built lineage entries for the model tests. */
import { ExecutionEntry, FileUse, ModelRole, ModelUse, SessionEntry, SqlUse } from '../src/types';

let hashes = 0;

export function session(id = 's1', seq = 0): SessionEntry {
  return { seq, prev: '0'.repeat(32), hash: `h${hashes++}`, kind: 'session', body: { session: id } };
}

export interface Run {
  n: number;
  cell?: string | null;
  reads?: [string, string | null, string?][]; // name, source id, content hash
  writes?: [string, string?][]; // name, content hash
  deletes?: string[];
  session?: string;
  seq?: number;
  code?: string;
  error?: [string, string]; // type, message
  /** name, version, role, source id */
  models?: [string, number, ModelRole, string | null][];
  sql?: Partial<SqlUse>[];
  files?: FileUse[];
}

export function run(r: Run): ExecutionEntry {
  const session = r.session ?? 's1';
  const fp = (hash = 'same') => ({ kind: 'int', hash, weak: false, summary: '1', reason: null });
  return {
    seq: r.seq ?? r.n,
    prev: 'p',
    hash: `h${hashes++}`,
    kind: 'execution',
    body: {
      schema: 'nbgov.record/1',
      id: `${session}:${r.n}`,
      session,
      execution_count: r.n,
      cell_id: r.cell === undefined ? `c${r.n}` : r.cell,
      code: r.code ?? `# ${r.n}`,
      code_hash: '',
      started: '2026-01-01T00:00:00Z',
      duration_s: 0.1,
      status: r.error ? 'error' : 'ok',
      error: r.error ? { type: r.error[0], message: r.error[1] } : null,
      result: null,
      reads: (r.reads ?? []).map(([name, source, hash]) => ({ name, source, fingerprint: fp(hash) })),
      writes: (r.writes ?? []).map(([name, hash]) => ({ name, mutated: false, fingerprint: fp(hash) })),
      deletes: r.deletes ?? [],
      files: r.files ?? [],
      models: (r.models ?? []).map(([name, version, role, source]) => ({
        name,
        version,
        role,
        source,
        sha256: 'f'.repeat(64),
        producer: 'skl2onnx',
        opset: 17
      })),
      sql: (r.sql ?? []).map(q => ({
        statement: '',
        kind: 'select',
        tables_read: [],
        tables_written: [],
        files_read: [],
        files_written: [],
        models: [],
        ...q
      })),
      packages_added: {}
    }
  };
}

export function model(name: string, version: number, role: ModelRole, source: string | null): ModelUse {
  return { name, version, sha256: `sha-${version}`, producer: null, opset: null, source, role };
}

/** A file use as the kernel records it; `removed` is a write that left nothing at the path. */
export function file(path: string, mode: 'read' | 'write', extra: Partial<FileUse> = {}): FileUse {
  return { path, abspath: `/work/${path}`, mode, size: 12, hash: `xxh-${path}`, source: null, removed: false, ...extra };
}

export function removedFile(path: string): FileUse {
  return file(path, 'write', { size: null, hash: null, removed: true });
}
