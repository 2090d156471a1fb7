/**
 * Tiny DOM builders. Notebook content (code, names, paths, messages) only ever
 * reaches the page through textContent: nothing here parses HTML.
 */

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  text?: string
): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    node.setAttribute(k, String(v));
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** "12:03:41" from an ISO time, or the raw text when it does not parse. */
export function clock(iso: string): string {
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleTimeString([], { hour12: false });
}

/** "0.42 s", "3 ms", "2 min 5 s". */
export function duration(seconds: number | null): string {
  if (seconds === null) {
    return '—';
  }
  if (seconds < 1) {
    return `${Math.round(seconds * 1000)} ms`;
  }
  if (seconds < 60) {
    return `${seconds.toFixed(2)} s`;
  }
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** "cell 3" (1-based, as a user counts), "cell deleted", or "no cell" (run without a cell id). */
export function cellLabel(index: number | undefined | null): string {
  if (index === null) {
    return 'no cell';
  }
  return index === undefined || index < 0 ? 'cell deleted' : `cell ${index + 1}`;
}
