/**
 * Tiny DOM builders. Notebook content (code, names, paths, messages) only ever
 * reaches the page through textContent: nothing here parses HTML.
 */
import { fitMiddle, fitText } from './preview';

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

let clockFormat: Intl.DateTimeFormat | null = null;

/** "12:03:41" from an ISO time, or the raw text when it does not parse. */
export function clock(iso: string): string {
  const d = new Date(iso);
  if (isNaN(d.getTime())) {
    return iso;
  }
  // One formatter for every row: toLocaleTimeString builds a new one per call (slow).
  clockFormat ??= new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  return clockFormat.format(d);
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

/**
 * Cuts text to a pixel width at word boundaries (with an ellipsis), measuring with a
 * canvas in the font the text will be drawn in. CSS ellipsis cuts mid-word; this does not.
 */
export class TextFitter {
  private _ctx: CanvasRenderingContext2D | null = null;
  private _cache = new Map<string, string>();

  /** `${font-size} ${font-family}` of an element, for `fit`. */
  static fontOf(element: Element): string {
    const style = getComputedStyle(element);
    return `${style.fontSize} ${style.fontFamily}`;
  }

  measure(text: string, font: string): number {
    if (!this._ctx) {
      this._ctx = document.createElement('canvas').getContext('2d');
    }
    if (!this._ctx) {
      return text.length * 7;
    }
    this._ctx.font = font;
    return this._ctx.measureText(text).width;
  }

  /** `text` fitted to `width`: cut at a word boundary, or (`middle`) in its middle (names). */
  fit(text: string, width: number, font: string, middle = false): string {
    const key = `${width}\u0000${font}\u0000${middle ? 'm' : 'w'}${text}`;
    let fitted = this._cache.get(key);
    if (fitted === undefined) {
      fitted = (middle ? fitMiddle : fitText)(text, width, s => this.measure(s, font));
      if (this._cache.size > 5000) {
        this._cache.clear();
      }
      this._cache.set(key, fitted);
    }
    return fitted;
  }
}
