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
  /** The server's 0–1 relevance, shown as it came (the list keeps the server's order). */
  score: number;
  /** "buffer": the text is an editor's unsaved buffer (shown as "unsaved"). */
  source: 'buffer' | 'disk';
}

/** Why a search shows no hits, from the server's fields (statusText.emptyState). */
export type EmptyKind = 'noGoodMatch' | 'noMatch' | 'nothingIndexed' | 'refused' | 'storeUnavailable' | 'noQuery';

/** A run of hits from one file: consecutive hits in rank order (or every hit of the file when
 * the user groups by file). */
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
      /** Set when there are no hits: why, in one sentence. */
      empty?: { kind: EmptyKind; text: string };
      /** The server's current coverage while meaning is partial ("meaning in 1,039 of 9,053 chunks (11%)"). */
      coverage?: string;
      /** A re-run of the open query because the index grew (not the user's). */
      refreshed?: boolean;
    }
  | { type: 'error'; seq: number; message: string }
  | { type: 'status'; text: string }
  | { type: 'setQuery'; query: string };
