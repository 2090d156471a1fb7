/** Small hand-built lineage entries for the model tests. */
import { ExecutionEntry, ModelUse, SessionEntry } from '../src/types';

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
}

export function run(r: Run): ExecutionEntry {
  const session = r.session ?? 's1';
  const fp = (hash = 'same') => ({ kind: 'int', hash, weak: false, summary: '1' });
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
      code: `# ${r.n}`,
      code_hash: '',
      started: '2026-01-01T00:00:00Z',
      duration_s: 0.1,
      status: 'ok',
      error: null,
      reads: (r.reads ?? []).map(([name, source, hash]) => ({ name, source, fingerprint: fp(hash) })),
      writes: (r.writes ?? []).map(([name, hash]) => ({ name, mutated: false, fingerprint: fp(hash) })),
      deletes: r.deletes ?? [],
      files: [],
      models: [],
      sql: [],
      packages_added: {}
    }
  };
}

export function model(name: string, version: number, role: 'input' | 'output', source: string | null): ModelUse {
  return { name, version, sha256: `sha-${version}`, producer: null, opset: null, source, role };
}
