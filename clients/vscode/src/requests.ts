// Building and sending the custom `docs/*` requests (declared once, typed, in lspExt.ts). No
// `vscode` import: the extension (through vscode-languageclient) and the e2e test (through
// vscode-jsonrpc) share exactly this code.
import type { CancellationToken, RequestType } from 'vscode-jsonrpc';
import * as ext from './lspExt';
import type {
  ErrorKind,
  IndexParams,
  IndexResult,
  ProgressToken,
  RelatedParams,
  RelatedResult,
  SearchMode,
  SearchParams,
  SearchResult,
  StatusResult,
} from './lspExt';

/** JSON-RPC error codes of the contract (protocol/spec.md, "Errors", revision 1.1). The LSP
 * codes keep their meanings; every application failure is RequestFailed with `data.kind`. */
export const ErrorCodes = {
  invalidParams: -32602,
  requestCancelled: -32800,
  serverNotInitialized: -32002,
  requestFailed: -32803,
} as const;

/** The `data.kind` values of a RequestFailed error (schema.json `ErrorKind`). */
export const ERROR_KINDS: readonly ErrorKind[] = ['modelUnavailable', 'storeUnavailable', 'storeLocked', 'storeIncompatible', 'storeCorrupt'];

export const SEARCH_MODES: readonly SearchMode[] = ['hybrid', 'semantic', 'keyword'];
export const MAX_QUERY_LENGTH = 2000;
export const MAX_LIMIT = 100;
export const DEFAULT_LIMIT = 20;

/** Anything that sends typed JSON-RPC requests: a LanguageClient or a vscode-jsonrpc connection. */
export interface RequestSender {
  sendRequest<P, R, E>(type: RequestType<P, R, E>, params: P, token?: CancellationToken): Promise<R>;
}

export const DEFAULT_RELATED_LIMIT = 10;

export function isSearchMode(value: unknown): value is SearchMode {
  return typeof value === 'string' && (SEARCH_MODES as readonly string[]).includes(value);
}

/** The query as it will be sent, or undefined when there is nothing to search for (the server
 * rejects blank queries, so the client does not ask). */
export function normalizeQuery(query: string): string | undefined {
  const trimmed = query.trim();
  if (trimmed.length === 0) {
    return undefined;
  }
  return trimmed.length > MAX_QUERY_LENGTH ? trimmed.slice(0, MAX_QUERY_LENGTH) : trimmed;
}

export interface SearchOptions {
  mode?: SearchMode;
  limit?: number;
  include?: readonly string[];
  exclude?: readonly string[];
}

/** `docs/search` params, or undefined for a blank query. Optional fields are left out rather
 * than sent empty, so the server's defaults apply. */
export function buildSearchParams(query: string, options: SearchOptions = {}): SearchParams | undefined {
  const text = normalizeQuery(query);
  if (text === undefined) {
    return undefined;
  }
  const params: SearchParams = { query: text };
  if (options.limit !== undefined && Number.isFinite(options.limit)) {
    params.limit = Math.min(MAX_LIMIT, Math.max(1, Math.trunc(options.limit)));
  }
  if (options.mode !== undefined) {
    params.mode = options.mode;
  }
  const include = cleanGlobs(options.include);
  if (include.length > 0) {
    params.include = include;
  }
  const exclude = cleanGlobs(options.exclude);
  if (exclude.length > 0) {
    params.exclude = exclude;
  }
  return params;
}

export function buildIndexParams(options: { uris?: readonly string[]; force?: boolean; workDoneToken?: ProgressToken } = {}): IndexParams {
  const params: IndexParams = {};
  if (options.uris !== undefined && options.uris.length > 0) {
    params.uris = [...options.uris];
  }
  if (options.force === true) {
    params.force = true;
  }
  if (options.workDoneToken !== undefined) {
    params.workDoneToken = options.workDoneToken;
  }
  return params;
}

export function search(sender: RequestSender, params: SearchParams, token?: CancellationToken): Promise<SearchResult> {
  return send(sender, ext.search, params, token);
}

export function index(sender: RequestSender, params: IndexParams, token?: CancellationToken): Promise<IndexResult> {
  return send(sender, ext.index, params, token);
}

export function status(sender: RequestSender, token?: CancellationToken): Promise<StatusResult> {
  return send(sender, ext.status, {}, token);
}

/** Passages in other files related to the paragraph at `position` in `uri`. */
export function related(sender: RequestSender, params: RelatedParams, token?: CancellationToken): Promise<RelatedResult> {
  return send(sender, ext.related, params, token);
}

export function buildRelatedParams(uri: string, line: number, character: number, limit = DEFAULT_RELATED_LIMIT): RelatedParams {
  return {
    uri,
    position: { line: Math.max(0, Math.trunc(line)), character: Math.max(0, Math.trunc(character)) },
    limit: Math.min(MAX_LIMIT, Math.max(1, Math.trunc(limit))),
  };
}

/** Only a real token goes after the params: vscode-jsonrpc takes a trailing `undefined` for one
 * more parameter (it would send `[params, null]` for an untyped method). */
function send<P, R>(sender: RequestSender, type: RequestType<P, R, void>, params: P, token: CancellationToken | undefined): Promise<R> {
  return token === undefined ? sender.sendRequest(type, params) : sender.sendRequest(type, params, token);
}

/** The JSON-RPC error code of a rejected request, if it is one (ResponseError has `code`). */
export function errorCode(error: unknown): number | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code;
    return typeof code === 'number' ? code : undefined;
  }
  return undefined;
}

export function isCancelled(error: unknown): boolean {
  return errorCode(error) === ErrorCodes.requestCancelled;
}

/** Which application failure a rejected request is (RequestFailed's `data.kind`), or undefined
 * for any other error, including a kind this client does not know yet (shown as a plain
 * failure: the contract may add kinds). */
export function errorKind(error: unknown): ErrorKind | undefined {
  if (errorCode(error) !== ErrorCodes.requestFailed || typeof error !== 'object' || error === null || !('data' in error)) {
    return undefined;
  }
  const data = (error as { data: unknown }).data;
  if (typeof data !== 'object' || data === null || !('kind' in data)) {
    return undefined;
  }
  const kind = (data as { kind: unknown }).kind;
  return (ERROR_KINDS as readonly unknown[]).includes(kind) ? (kind as ErrorKind) : undefined;
}

/** A store built for another model or damaged: re-indexing with `force` rebuilds it. (A locked
 * store is not offered this: the server never deletes a store another process holds.) */
export function rebuildFixes(error: unknown): boolean {
  const kind = errorKind(error);
  return kind === 'storeCorrupt' || kind === 'storeIncompatible';
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  if (typeof error === 'object' && error !== null && 'message' in error) {
    const message = (error as { message: unknown }).message;
    if (typeof message === 'string') {
      return message;
    }
  }
  return String(error);
}

function cleanGlobs(globs: readonly string[] | undefined): string[] {
  return (globs ?? []).map((g) => g.trim()).filter((g) => g.length > 0);
}
