/**
 * Shapes of the lineage log as the kernel and the notebook file carry it
 * (see the team BRIEF: "lineage record" and "notebook metadata").
 */

export interface Fingerprint {
  kind: string;
  hash: string | null;
  weak: boolean;
  summary: string;
  /** Why the fingerprint is weak, or how it was taken (absent in older logs). */
  reason: string | null;
}

export interface ReadUse {
  name: string;
  fingerprint: Fingerprint;
  source: string | null;
}

export interface WriteUse {
  name: string;
  fingerprint: Fingerprint;
  mutated: boolean;
}

export interface FileUse {
  path: string;
  abspath: string;
  mode: string;
  size: number | null;
  hash: string | null;
  source: string | null;
  /**
   * The cell removed the file or renamed it away: a write that left nothing at the path
   * (no size, no hash), unlike a write whose hash is missing for another reason.
   */
  removed: boolean;
}

/**
 * "output": the execution created or registered this model version; "input": it used it;
 * "dropped": it removed the version (DROP MODEL).
 */
export type ModelRole = 'input' | 'output' | 'dropped';

export interface ModelUse {
  name: string;
  version: number | null;
  sha256: string;
  producer: string | null;
  opset: number | null;
  source: string | null;
  /**
   * 'output': this execution registered the version; 'input': it scored or described it;
   * 'dropped': it removed it (DROP MODEL).
   * Logs written before roles: parse.ts infers it from the record's CREATE MODEL.
   */
  role: ModelRole;
}

export interface SqlUse {
  statement: string;
  kind: string;
  tables_read: string[];
  tables_written: string[];
  files_read: string[];
  files_written: string[];
  models: string[];
}

export interface ExecutionBody {
  schema: string;
  id: string;
  session: string;
  execution_count: number | null;
  cell_id: string | null;
  code: string;
  code_hash: string;
  started: string;
  duration_s: number | null;
  status: string;
  error: { type: string; message: string } | null;
  /** The value the cell displayed (`Out[n]`), when it displayed one. */
  result: Fingerprint | null;
  reads: ReadUse[];
  writes: WriteUse[];
  deletes: string[];
  files: FileUse[];
  models: ModelUse[];
  sql: SqlUse[];
  packages_added: Record<string, string>;
}

export interface EntryHead {
  seq: number;
  prev: string;
  hash: string;
}

export interface ExecutionEntry extends EntryHead {
  kind: 'execution';
  body: ExecutionBody;
}

export interface SessionEntry extends EntryHead {
  kind: 'session';
  body: { session: string; [key: string]: unknown };
}

export type LineageEntry = ExecutionEntry | SessionEntry;

/** Stale reasons per execution id. */
export type StaleMap = Map<string, string[]>;

export const NOTEBOOK_SCHEMA = 'nbgov.notebook/2';
/** Notebooks written before the compact form: whole entries, a copy in each cell. */
export const OLD_NOTEBOOK_SCHEMA = 'nbgov.notebook/1';
export const META_KEY = 'nbgov';
