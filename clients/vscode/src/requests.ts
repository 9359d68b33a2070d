// Building and sending the custom `docs/*` requests. No `vscode` import: the extension (through
// vscode-languageclient) and the e2e test (through vscode-jsonrpc) share exactly this code.
import type { CancellationToken } from 'vscode-jsonrpc';
import type {
  ErrorKind,
  IndexParams,
  IndexResult,
  ProgressToken,
  SearchMode,
  SearchParams,
  SearchResult,
  StatusResult,
} from './types';

export const Methods = {
  index: 'docs/index',
  search: 'docs/search',
  status: 'docs/status',
} as const;

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

/** Anything that sends JSON-RPC requests: a LanguageClient or a vscode-jsonrpc connection. */
export interface RequestSender {
  sendRequest<R>(method: string, params: unknown, token?: CancellationToken): Promise<R>;
}

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
  return send<SearchResult>(sender, Methods.search, params, token);
}

export function index(sender: RequestSender, params: IndexParams, token?: CancellationToken): Promise<IndexResult> {
  return send<IndexResult>(sender, Methods.index, params, token);
}

export function status(sender: RequestSender, token?: CancellationToken): Promise<StatusResult> {
  return send<StatusResult>(sender, Methods.status, {}, token);
}

/** vscode-jsonrpc treats every argument after the method as a parameter unless it is a
 * token: passing `undefined` explicitly would send `[params, null]` instead of `params`. */
function send<R>(sender: RequestSender, method: string, params: unknown, token: CancellationToken | undefined): Promise<R> {
  return token === undefined ? sender.sendRequest<R>(method, params) : sender.sendRequest<R>(method, params, token);
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
