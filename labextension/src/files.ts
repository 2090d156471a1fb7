/**
 * What the details panel says about one file an execution opened: its path, how it was
 * used (read, write, or removed) and a sub line. Pure, so the wording is unit-tested.
 */
import { shortHash } from './log';
import { FileUse } from './types';

export interface FileItem {
  name: string;
  /** "read", "write", or "removed" for a write that left nothing at the path. */
  aside: string;
  sub: string;
  removed: boolean;
}

export function fileItem(f: FileUse): FileItem {
  if (f.removed) {
    // No hash or size to show: say what happened instead of printing an empty hash.
    return { name: f.path, aside: 'removed', sub: `removed or renamed away · ${f.abspath}`, removed: true };
  }
  const size = f.size === null ? null : `${f.size.toLocaleString('en-US')} B`;
  return {
    name: f.path,
    aside: f.mode,
    sub: [shortHash(f.hash), size, f.abspath].filter(Boolean).join(' · '),
    removed: false
  };
}
