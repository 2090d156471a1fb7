/**
 * One-line previews of executed code and text that fits a width, cut at word
 * boundaries. A `%%sqlml` cell previews its first SQL line (the narrow sidebar leaves
 * out the magic line that `nbgov show` keeps), so SQL cells can be told apart. Pure,
 * unit-tested.
 */

export const ELLIPSIS = '…';
const SQL_MAGIC = '%%sqlml';

/** The first two non-blank lines of `code`, trimmed, without splitting all of it. */
function leadingLines(code: string): string[] {
  const out: string[] = [];
  let start = 0;
  while (start <= code.length && out.length < 2) {
    let end = code.indexOf('\n', start);
    if (end < 0) {
      end = code.length;
    }
    const line = code.slice(start, end).trim();
    if (line) {
      out.push(line);
    }
    start = end + 1;
  }
  return out;
}

/** The first meaningful line of a cell; for `%%sqlml`, its first SQL line. */
export function codePreview(code: string): string {
  const [first, second] = leadingLines(code);
  if (first === undefined) {
    return '';
  }
  const isSql = first.split(/\s/, 1)[0] === SQL_MAGIC;
  return isSql && second !== undefined ? second : first;
}

/** Whether a cell runs `%%sqlml` (its preview is SQL). */
export function isSqlCell(code: string): boolean {
  const [first] = leadingLines(code);
  return first !== undefined && first.split(/\s/, 1)[0] === SQL_MAGIC;
}

/**
 * `text` cut to `max` characters at a word boundary, with an ellipsis when cut.
 * A single word longer than half the room is cut inside it rather than dropped.
 */
export function clipWords(text: string, max: number): string {
  if (text.length <= max) {
    return text;
  }
  const room = Math.max(1, max - 1);
  let cut = text.lastIndexOf(' ', room);
  if (cut < Math.floor(room / 2)) {
    cut = room;
  }
  return text.slice(0, cut).trimEnd() + ELLIPSIS;
}

/**
 * The longest word-boundary prefix of `text` (plus an ellipsis) whose measured width
 * fits `maxWidth`; `measure` is the renderer's text width function.
 */
export function fitText(text: string, maxWidth: number, measure: (s: string) => number): string {
  if (measure(text) <= maxWidth) {
    return text;
  }
  // Binary search on the character budget, then clip on words within it.
  let lo = 1;
  let hi = text.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(clipWords(text, mid)) <= maxWidth) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return clipWords(text, lo);
}

/**
 * `text` cut in its middle to fit `maxWidth`, its start and end kept around an ellipsis:
 * for names, whose end tells them apart (`features_train` and `features_test`, two
 * `os.environ['…']`, `model_v1.onnx` and `model_v2.onnx`) where a cut end would not.
 */
export function fitMiddle(text: string, maxWidth: number, measure: (s: string) => number): string {
  if (measure(text) <= maxWidth) {
    return text;
  }
  const cut = (kept: number): string => text.slice(0, Math.ceil(kept / 2)) + ELLIPSIS + text.slice(text.length - Math.floor(kept / 2));
  let lo = 1;
  let hi = text.length - 1;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (measure(cut(mid)) <= maxWidth) {
      lo = mid;
    } else {
      hi = mid - 1;
    }
  }
  return cut(lo);
}

/** `[n] first line`: how an execution is named in the graph and its tooltips. */
export function shortLabel(executionCount: number | null, code: string, max = 40): string {
  const prefix = `[${executionCount ?? '?'}] `;
  return prefix + clipWords(codePreview(code), Math.max(2, max - prefix.length));
}
