// The wire contract's custom methods (protocol/spec.md), each declared once as a typed request or
// notification, as rust-analyzer's lsp_ext.ts does. The types come from src/generated/protocol.d.ts,
// which `npm run build` generates from protocol/schema.json. No `vscode` import: the extension
// (vscode-languageclient) and the e2e test (vscode-jsonrpc) share it.
import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type * as wire from './generated/protocol';

export type { ErrorKind, Hit, IndexResult, Position, ProgressToken, Range, SearchParams, SearchResult, StatusResult } from './generated/protocol';

/** docs/index params as clients send them (the schema also allows `null`). */
export type IndexParams = NonNullable<wire.IndexParams>;
export type SearchMode = NonNullable<wire.SearchParams['mode']>;
export type IndexState = wire.SearchResult['indexState'];
export type ServerState = wire.StatusResult['state'];
export type Highlight = NonNullable<wire.Hit['highlights']>[number];
export type WorkspaceStatus = NonNullable<wire.StatusResult['workspaces']>[number];

/**
 * docs/related and Hit.matchRange are in the contract (the lead's decisions, COMMON2) but not
 * yet in this branch's protocol/schema.json: the "results" branch adds them to the schema.
 * Until then they are declared here, from the generated Position / Range / Hit.
 */
export interface RelatedParams {
  uri: string;
  position: wire.Position;
  /** 1..100, default 10. */
  limit?: number;
}
export interface RelatedResult {
  /** From other files only. */
  hits: wire.Hit[];
  elapsedMs: number;
  /** The paragraph or section at the cursor that was used as the query. */
  anchor: wire.Range;
}

export const index = new RequestType<IndexParams, wire.IndexResult, void>('docs/index');
export const search = new RequestType<wire.SearchParams, wire.SearchResult, void>('docs/search');
export const status = new RequestType<wire.StatusParams, wire.StatusResult, void>('docs/status');
export const related = new RequestType<RelatedParams, RelatedResult, void>('docs/related');
/** Server → client: the docs/status object, pushed when it changes (at most ~2/s). */
export const statusChanged = new NotificationType<wire.StatusResult>('zl/status');
