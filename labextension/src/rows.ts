/**
 * What one timeline row says, and how tall it is, decided from the entry alone (no
 * DOM): the virtualized list needs every row's height before drawing any of them.
 * Each row is a fixed number of one-line strips: the kernel session's label on the
 * newest run of each session (when the timeline holds several), a header (count,
 * status, cell, time), the code preview, then the error and the stale reason when there
 * are any.
 */
import { codePreview, isSqlCell } from './preview';
import { ExecutionEntry, SessionEntry, StaleMap } from './types';

/** Height of one strip of a row, and of the row's padding and border together. */
export const LINE_PX = 18;
export const ROW_CHROME_PX = 7;

export interface TimelineRow {
  id: string;
  count: string;
  ok: boolean;
  preview: string;
  sql: boolean;
  /** First line of the error ("Type: message"), or null when the run succeeded. */
  error: string | null;
  /** Every stale reason, one line: "input a rewritten by [5]; …", or null. */
  stale: string | null;
  /** Full text for the tooltip: the preview, the whole error, each stale reason. */
  tooltip: string;
  /** The session strip above the row ("session 2 · started 10:21:05"), or null. */
  session: string | null;
}

/** The error strip's text, or null for a run that succeeded. */
function errorLine(entry: ExecutionEntry): string | null {
  const b = entry.body;
  if (b.error) {
    const first = b.error.message.split('\n', 1)[0];
    return first ? `${b.error.type}: ${first}` : b.error.type;
  }
  return b.status === 'ok' ? null : `failed (${b.status})`;
}

export function rowLines(entry: ExecutionEntry, stale: StaleMap, session: string | null = null): number {
  return (session === null ? 0 : 1) + 2 + (errorLine(entry) === null ? 0 : 1) + (stale.has(entry.body.id) ? 1 : 0);
}

export function rowHeight(entry: ExecutionEntry, stale: StaleMap, session: string | null = null): number {
  return ROW_CHROME_PX + LINE_PX * rowLines(entry, stale, session);
}

/**
 * The session strip of each row of `newestFirst`: on the newest run of every block of
 * runs from one kernel session, "session N · started HH:MM:SS" (N counts the log's
 * sessions, oldest first; the time is the session entry's, else its oldest run's);
 * null elsewhere, and everywhere when every run is of one session.
 */
export function sessionStrips(
  newestFirst: readonly ExecutionEntry[],
  sessions: readonly SessionEntry[],
  clock: (iso: string) => string
): (string | null)[] {
  if (new Set(newestFirst.map(e => e.body.session)).size < 2) {
    return newestFirst.map(() => null);
  }
  const number = new Map<string, number>();
  const started = new Map<string, string>();
  for (const s of sessions) {
    const id = s.body.session;
    if (!number.has(id)) {
      number.set(id, number.size + 1);
    }
    if (typeof s.body.started === 'string' && s.body.started) {
      started.set(id, s.body.started);
    }
  }
  for (let i = newestFirst.length - 1; i >= 0; i--) {
    const { session, started: at } = newestFirst[i].body;
    if (!number.has(session)) {
      number.set(session, number.size + 1); // runs whose session entry the log lacks
    }
    if (!started.has(session) && at) {
      started.set(session, at);
    }
  }
  return newestFirst.map((entry, i) => {
    const id = entry.body.session;
    if (i > 0 && newestFirst[i - 1].body.session === id) {
      return null;
    }
    const at = started.get(id);
    return `session ${number.get(id)}${at ? ` · started ${clock(at)}` : ''}`;
  });
}

export function timelineRow(entry: ExecutionEntry, stale: StaleMap, session: string | null = null): TimelineRow {
  const b = entry.body;
  const reasons = stale.get(b.id) ?? [];
  const preview = codePreview(b.code);
  const error = errorLine(entry);
  const tooltip = [
    preview,
    b.error ? `${b.error.type}: ${b.error.message}` : null,
    ...reasons.map(r => `stale: ${r}`)
  ].filter((line): line is string => !!line);
  return {
    id: b.id,
    count: `[${b.execution_count ?? ' '}]`,
    ok: error === null,
    preview,
    sql: isSqlCell(b.code),
    error,
    stale: reasons.length > 0 ? `stale: ${reasons.join('; ')}` : null,
    tooltip: tooltip.join('\n'),
    session
  };
}

/** Plural with thousands separators: "1 execution", "10,000 executions". */
export function plural(n: number, word: string, words = `${word}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? word : words}`;
}

/**
 * The counts of a log in the one wording `nbgov show`, `nbgov verify` and `%lineage`
 * use: "6 entries: 1 session, 5 executions · 1 failed · 2 stale" (`long`), and the part
 * that fits the sidebar's header (`short`: "5 executions · 1 failed · 2 stale").
 */
export function logCounts(
  executions: readonly ExecutionEntry[],
  sessions: number,
  stale: number
): { short: string; long: string } {
  const failed = executions.filter(e => e.body.status !== 'ok').length;
  const extra = [failed ? `${failed.toLocaleString('en-US')} failed` : '', stale ? `${stale.toLocaleString('en-US')} stale` : ''];
  const tail = extra.filter(Boolean).map(t => ` · ${t}`).join('');
  const runs = plural(executions.length, 'execution');
  const kinds = [sessions ? plural(sessions, 'session') : '', executions.length ? runs : ''].filter(Boolean).join(', ');
  const entries = plural(sessions + executions.length, 'entry', 'entries');
  return { short: `${runs}${tail}`, long: `${entries}${kinds ? `: ${kinds}` : ''}${tail}` };
}
