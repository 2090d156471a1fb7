/**
 * What one timeline row says, and how tall it is, decided from the entry alone (no
 * DOM): the virtualized list needs every row's height before drawing any of them.
 * Each row is a fixed number of one-line strips: a header (count, status, cell, time),
 * the code preview, then the error and the stale reason when there are any.
 */
import { codePreview, isSqlCell } from './preview';
import { ExecutionEntry, StaleMap } from './types';

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

export function rowLines(entry: ExecutionEntry, stale: StaleMap): number {
  return 2 + (errorLine(entry) === null ? 0 : 1) + (stale.has(entry.body.id) ? 1 : 0);
}

export function rowHeight(entry: ExecutionEntry, stale: StaleMap): number {
  return ROW_CHROME_PX + LINE_PX * rowLines(entry, stale);
}

export function timelineRow(entry: ExecutionEntry, stale: StaleMap): TimelineRow {
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
    tooltip: tooltip.join('\n')
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
