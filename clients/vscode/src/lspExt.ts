// The wire contract's custom methods (protocol/spec.md), each declared once as a typed request or
// notification, as rust-analyzer's lsp_ext.ts does. The types come from src/generated/protocol.d.ts,
// which `npm run build` generates from protocol/schema.json. No `vscode` import: the extension
// (vscode-languageclient) and the e2e test (vscode-jsonrpc) share it.
import { NotificationType, RequestType } from 'vscode-jsonrpc';
import type * as wire from './generated/protocol';

export type { ErrorKind, Hit, IndexResult, Position, ProgressToken, Range, RelatedParams, RelatedResult, SearchParams, SearchResult, StatusResult } from './generated/protocol';

/** docs/index params as clients send them (the schema also allows `null`). */
export type IndexParams = NonNullable<wire.IndexParams>;
export type SearchMode = NonNullable<wire.SearchParams['mode']>;
export type IndexState = wire.SearchResult['indexState'];
export type ServerState = wire.StatusResult['state'];
export type Highlight = NonNullable<wire.Hit['highlights']>[number];
export type WorkspaceStatus = NonNullable<wire.StatusResult['workspaces']>[number];

export const index = new RequestType<IndexParams, wire.IndexResult, void>('docs/index');
export const search = new RequestType<wire.SearchParams, wire.SearchResult, void>('docs/search');
export const status = new RequestType<wire.StatusParams, wire.StatusResult, void>('docs/status');
export const related = new RequestType<wire.RelatedParams, wire.RelatedResult, void>('docs/related');
/** Server → client: the docs/status object, pushed when it changes (at most ~2/s). */
export const statusChanged = new NotificationType<wire.StatusResult>('zl/status');
