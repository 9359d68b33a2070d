// Type declarations shared by the extension host, the plain modules, the tests and the webview
// script. Declarations only (nothing is emitted), so the webview bundle stays a single file.
// The wire types mirror protocol/spec.md and protocol/schema.json (v1 plus its extensions).

export type SearchMode = 'hybrid' | 'semantic' | 'keyword';
export type IndexState = 'ready' | 'indexing' | 'empty';
export type ServerState = 'idle' | 'indexing' | 'loadingModel' | 'error';
export type ProgressToken = string | number;

export interface Position {
  line: number;
  character: number;
}

export interface Range {
  start: Position;
  end: Position;
}

export interface IndexParams {
  uris?: string[];
  force?: boolean;
  workDoneToken?: ProgressToken;
}

/** `data.kind` of a RequestFailed (-32803) error (protocol/spec.md, "Errors"). */
export type ErrorKind = 'modelUnavailable' | 'storeUnavailable' | 'storeLocked' | 'storeIncompatible' | 'storeCorrupt';

export interface IndexError {
  uri: string;
  message: string;
}

export interface IndexResult {
  files: number;
  indexedFiles: number;
  unchangedFiles: number;
  removedFiles: number;
  skippedFiles: number;
  chunks: number;
  embeddedChunks: number;
  elapsedMs: number;
  errors: IndexError[];
}

export interface SearchParams {
  query: string;
  limit?: number;
  mode?: SearchMode;
  include?: string[];
  exclude?: string[];
}

export interface Highlight {
  start: number;
  length: number;
}

export interface Hit {
  uri: string;
  range: Range;
  score: number;
  headingPath: string[];
  snippet: string;
  language: string;
  /** Extension: workspace-relative path. */
  path?: string;
  /** Extension: query terms in `snippet`, in UTF-16 code units. */
  highlights?: Highlight[];
}

export interface SearchResult {
  hits: Hit[];
  elapsedMs: number;
  indexState: IndexState;
  /** Extension: the mode actually used. */
  mode?: SearchMode;
  /** Extension: why the mode differs from the one asked, for example. */
  notice?: string;
}

export interface WorkspaceStatus {
  uri: string;
  files: number;
  chunks: number;
  store: string;
}

export interface StatusResult {
  state: ServerState;
  files: number;
  chunks: number;
  pendingFiles: number;
  model: { id: string; dimension: number; device: string };
  store: { kind: 'embedded' | 'server'; location: string };
  lastError?: string;
  workspaces?: WorkspaceStatus[];
  searchModes?: SearchMode[];
}

// --- the search view -----------------------------------------------------------------------

/** One hit as the view shows it, under its file. */
export interface ViewHit {
  /** 1-based, for display. */
  line: number;
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
