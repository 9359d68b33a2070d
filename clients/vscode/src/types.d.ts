// The search view's own types, shared by the extension host, the plain modules, the tests and the
// webview script. Declarations only (nothing is emitted), so the webview bundle stays a single
// file. The wire types are not here: src/generated/protocol.d.ts is generated from
// protocol/schema.json (scripts/generate-types.mjs) and src/lspExt.ts names them.
import type { Range, SearchParams } from './generated/protocol';

export type SearchMode = NonNullable<SearchParams['mode']>;

export interface Highlight {
  start: number;
  length: number;
}

/** One hit as the view shows it, under its file. */
export interface ViewHit {
  /** 1-based, for display: the line the hit points at (its matchRange when it has one). */
  line: number;
  /** What opening the hit selects: the hit's matchRange when present, else its range. */
  range: Range;
  heading: string;
  snippet: string;
  highlights: Highlight[];
  score: number;
}

export interface FileGroup {
  uri: string;
  /** Workspace-relative path (or the file system path outside any folder). */
  label: string;
  hits: ViewHit[];
}

/** Messages the webview posts to the extension (validated there: see messages.ts). */
export type FromView =
  | { type: 'ready' }
  | { type: 'search'; seq: number; query: string; mode: SearchMode }
  | { type: 'open'; uri: string; range: Range };

/** Messages the extension posts to the webview. */
export type ToView =
  | { type: 'init'; mode: SearchMode; query: string }
  | {
      type: 'results';
      seq: number;
      groups: FileGroup[];
      /** One line such as "12 results in 3 files · 5 ms". */
      summary: string;
      notice?: string;
    }
  | { type: 'error'; seq: number; message: string }
  | { type: 'status'; text: string }
  | { type: 'setQuery'; query: string };
