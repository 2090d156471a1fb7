/**
 * Pan and zoom arithmetic for the graph view: a view maps content to screen as
 * `screen = content * k + (x, y)`. Pure, unit-tested.
 */

export interface View {
  x: number;
  y: number;
  k: number;
}

export interface Size {
  width: number;
  height: number;
}

export const MIN_ZOOM = 0.1;
export const MAX_ZOOM = 4;
/** Labels are readable from this scale up. */
export const READABLE_ZOOM = 0.6;
/** The first view shows the whole graph unless that needs a smaller scale than this. */
export const MIN_FIT_ZOOM = 0.4;
const PAD = 8;

export function clampZoom(k: number): number {
  return Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, k));
}

/** The whole content in the viewport, centred across and from the top, never enlarged beyond 1:1. */
export function fitAll(content: Size, viewport: Size): View {
  const k = clampZoom(
    Math.min(1, (viewport.width - 2 * PAD) / Math.max(1, content.width), (viewport.height - 2 * PAD) / Math.max(1, content.height))
  );
  return {
    k,
    x: (viewport.width - content.width * k) / 2,
    y: PAD
  };
}

/**
 * The first view of a graph: all of it, unless that shrinks it below MIN_FIT_ZOOM;
 * then readable, from the top (the first cells), centred on `focus` (content
 * coordinates, e.g. the selected node) when given.
 */
export function initialView(content: Size, viewport: Size, focus?: { x: number; y: number }): View {
  const all = fitAll(content, viewport);
  if (all.k >= MIN_FIT_ZOOM) {
    return all;
  }
  const k = Math.min(1, Math.max(READABLE_ZOOM, (viewport.width - 2 * PAD) / Math.max(1, content.width)));
  const x = content.width * k <= viewport.width ? (viewport.width - content.width * k) / 2 : PAD;
  if (!focus) {
    return { k, x, y: PAD };
  }
  return centreOn({ k, x, y: PAD }, focus, viewport);
}

/** `view` moved so the content point `focus` sits in the middle of the viewport. */
export function centreOn(view: View, focus: { x: number; y: number }, viewport: Size): View {
  return { k: view.k, x: viewport.width / 2 - focus.x * view.k, y: viewport.height / 2 - focus.y * view.k };
}

/** Zoom by `factor` keeping the screen point (px, py) fixed (the pointer, or the centre). */
export function zoomAt(view: View, factor: number, px: number, py: number): View {
  const k = clampZoom(view.k * factor);
  const ratio = k / view.k;
  return { k, x: px - (px - view.x) * ratio, y: py - (py - view.y) * ratio };
}

export function panBy(view: View, dx: number, dy: number): View {
  return { k: view.k, x: view.x + dx, y: view.y + dy };
}

export function transform(view: View): string {
  return `translate(${view.x.toFixed(1)},${view.y.toFixed(1)}) scale(${view.k.toFixed(4)})`;
}
