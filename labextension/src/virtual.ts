/**
 * Geometry of a virtualized list whose rows have known heights: offsets by prefix sums,
 * the rows a viewport shows by binary search. Pure, so a list of 10,000 executions
 * costs the DOM only the few rows on screen.
 */

export interface RowRange {
  /** First row index shown (inclusive). */
  start: number;
  /** One past the last row index shown. */
  end: number;
}

export class VirtualLayout {
  private readonly _offsets: Float64Array;

  constructor(heights: ArrayLike<number>) {
    this._offsets = new Float64Array(heights.length + 1);
    for (let i = 0; i < heights.length; i++) {
      this._offsets[i + 1] = this._offsets[i] + heights[i];
    }
  }

  get count(): number {
    return this._offsets.length - 1;
  }

  /** Height of all rows together. */
  get total(): number {
    return this._offsets[this._offsets.length - 1];
  }

  offset(index: number): number {
    return this._offsets[index];
  }

  height(index: number): number {
    return this._offsets[index + 1] - this._offsets[index];
  }

  /** Index of the row at `y` (clamped to the list). */
  indexAt(y: number): number {
    let lo = 0;
    let hi = this.count - 1;
    if (hi < 0) {
      return 0;
    }
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this._offsets[mid] <= y) {
        lo = mid;
      } else {
        hi = mid - 1;
      }
    }
    return lo;
  }

  /** The rows that intersect [top, top + viewport), widened by `overscan` pixels each side. */
  range(top: number, viewport: number, overscan = 0): RowRange {
    if (this.count === 0) {
      return { start: 0, end: 0 };
    }
    const start = this.indexAt(Math.max(0, top - overscan));
    const bottom = top + viewport + overscan;
    let end = this.indexAt(bottom) + 1;
    if (this._offsets[end - 1] >= bottom && end - 1 > start) {
      end -= 1;
    }
    return { start, end: Math.min(end, this.count) };
  }

  /** The scroll position that brings row `index` fully into [top, top + viewport). */
  scrollToShow(index: number, top: number, viewport: number): number {
    const start = this.offset(index);
    const end = start + this.height(index);
    if (start < top) {
      return start;
    }
    if (end > top + viewport) {
      return Math.max(0, end - viewport);
    }
    return top;
  }
}
