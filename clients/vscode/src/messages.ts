// Validation of what the search webview posts. The webview renders server text, so its messages
// are checked like any untrusted input before they reach a command. No `vscode` import.
import { isSearchMode, MAX_QUERY_LENGTH } from './requests';
import type { Range } from './lspExt';
import type { FromView } from './types';

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isLineOrChar(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 0x7fffffff;
}

export function parseRange(value: unknown): Range | undefined {
  if (!isRecord(value) || !isRecord(value.start) || !isRecord(value.end)) {
    return undefined;
  }
  const { start, end } = value;
  if (!isLineOrChar(start.line) || !isLineOrChar(start.character) || !isLineOrChar(end.line) || !isLineOrChar(end.character)) {
    return undefined;
  }
  if (end.line < start.line || (end.line === start.line && end.character < start.character)) {
    return undefined;
  }
  return { start: { line: start.line, character: start.character }, end: { line: end.line, character: end.character } };
}

/** The message as a typed FromView, or undefined when it is not one (it is then ignored). */
export function parseFromView(message: unknown): FromView | undefined {
  if (!isRecord(message) || typeof message.type !== 'string') {
    return undefined;
  }
  switch (message.type) {
    case 'ready':
      return { type: 'ready' };
    case 'search': {
      const { seq, query, mode } = message;
      if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || typeof query !== 'string' || !isSearchMode(mode)) {
        return undefined;
      }
      // A pasted book is cut, not rejected: the server's limit is 2,000 characters.
      return { type: 'search', seq, query: query.slice(0, MAX_QUERY_LENGTH * 2), mode };
    }
    case 'open': {
      const range = parseRange(message.range);
      // Only file URIs: a result always points at a workspace file.
      if (typeof message.uri !== 'string' || !message.uri.startsWith('file:') || range === undefined) {
        return undefined;
      }
      return { type: 'open', uri: message.uri, range };
    }
    default:
      return undefined;
  }
}
