// Status bar and "Show Status" texts. No `vscode` import.
import type { IndexResult, StatusResult } from './lspExt';

export interface StatusView {
  text: string;
  tooltip: string;
}

/** What the status bar knows besides the last `docs/status` (or `zl/status` push). */
export type Phase =
  | { kind: 'starting' }
  | { kind: 'stopped'; reason?: string }
  | { kind: 'missing'; command: string }
  | { kind: 'noFolder' }
  | { kind: 'running'; status?: StatusResult };

const NAME = 'Zero-Latency';
const MAX_ERROR_CHARS = 200;

/** The first non-blank line of a message, cut at MAX_ERROR_CHARS. */
export function oneLine(text: string): string {
  const line = text.split(/\r?\n/).map((l) => l.trim()).find((l) => l !== '') ?? '';
  return line.length > MAX_ERROR_CHARS ? `${line.slice(0, MAX_ERROR_CHARS - 1)}…` : line;
}

export function plural(n: number, word: string): string {
  return `${n.toLocaleString('en-US')} ${word}${n === 1 ? '' : 's'}`;
}

export function countsText(status: Pick<StatusResult, 'files' | 'chunks'>): string {
  return `${plural(status.files, 'file')} · ${plural(status.chunks, 'chunk')}`;
}

export function statusBar(phase: Phase): StatusView {
  switch (phase.kind) {
    case 'starting':
      return { text: `$(sync~spin) ${NAME}: starting`, tooltip: `${NAME}: starting the search server` };
    case 'stopped':
      return { text: `$(debug-disconnect) ${NAME}: stopped`, tooltip: phase.reason ?? `${NAME}: the search server is not running` };
    case 'missing':
      return { text: `$(error) ${NAME}: server not found`, tooltip: `"${phase.command}" was not found. Click for details.` };
    case 'noFolder':
      return { text: `$(search) ${NAME}`, tooltip: `${NAME}: open a folder to index its docs` };
    case 'running':
      return runningView(phase.status);
  }
}

/**
 * Once the server runs, its own `$/progress` is the one progress item (VS Code shows it, with
 * the rate and ETA the server computes): this item says what the server is doing, with the
 * counts that grow, and never spins (only "starting" does, before any server progress can be). States are compared as strings: the server may add
 * states (the contract's "loading" / "ready"), shown here as their nearest known one.
 */
function runningView(status: StatusResult | undefined): StatusView {
  if (status === undefined) {
    return { text: `$(database) ${NAME}`, tooltip: `${NAME}: waiting for status` };
  }
  const tooltip = statusSummary(status);
  const state: string = status.state;
  switch (state) {
    case 'loading':
    case 'loadingModel':
      return { text: `$(database) ${NAME}: loading model`, tooltip };
    case 'indexing': {
      const pending = status.pendingFiles > 0 ? ` (${plural(status.pendingFiles, 'file')} left)` : '';
      // No counts before any are known (manifests still loading): never "0 files" while loading.
      const counts = status.files > 0 || status.chunks > 0 ? ` · ${countsText(status)}` : '';
      return { text: `$(database) ${NAME}: indexing${counts}${pending}`, tooltip };
    }
    case 'embedding': {
      // Keyword search covers everything; meaning only the part embedded so far.
      const share = meaningShare(status);
      return { text: `$(search) ${NAME}: ${countsText(status)}${share === undefined ? '' : ` · meaning ${share}%`}`, tooltip };
    }
    case 'error':
      return { text: `$(warning) ${NAME}: ${countsText(status)}`, tooltip };
    default:
      return { text: `$(search) ${NAME}: ${countsText(status)}`, tooltip };
  }
}

/** The share of chunks embedded (0–99), while meaning is partial; undefined when complete. */
export function meaningShare(status: Pick<StatusResult, 'keywordChunks' | 'embeddedChunks'>): number | undefined {
  const keyword = status.keywordChunks ?? 0;
  const embedded = status.embeddedChunks ?? 0;
  return keyword > 0 && embedded < keyword ? Math.floor((embedded * 100) / keyword) : undefined;
}

const STATE_WORDS: Readonly<Record<string, string>> = {
  idle: 'ready',
  embedding: 'ready for keyword search, meaning still arriving',
  ready: 'ready',
  indexing: 'indexing',
  loading: 'loading the model',
  loadingModel: 'loading the model',
  error: 'error',
};

/** Several lines: the status bar tooltip and the "Show Status" message. */
export function statusSummary(status: StatusResult): string {
  const lines = [
    `${NAME}: ${STATE_WORDS[status.state] ?? status.state} · ${countsText(status)}` +
      (status.pendingFiles > 0 ? ` · ${plural(status.pendingFiles, 'file')} pending` : ''),
    `Model: ${status.model.id}` + (status.model.dimension > 0 ? ` (${status.model.dimension}-d, ${status.model.device})` : ''),
    `Store: ${status.store.kind === 'server' ? 'Qdrant server' : 'embedded'} at ${status.store.location}`,
  ];
  if (status.searchModes !== undefined && status.searchModes.length > 0) {
    lines.push(`Search modes: ${status.searchModes.join(', ')}`);
  }
  if (status.lastError !== undefined && status.lastError !== '') {
    lines.push(`Last error: ${oneLine(status.lastError)}`); // a tooltip, not a traceback: the log has it whole
  }
  return lines.join('\n');
}

export function indexSummary(result: IndexResult): string {
  const parts = [`indexed ${plural(result.indexedFiles, 'file')}`];
  if (result.unchangedFiles > 0) parts.push(`${result.unchangedFiles} unchanged`);
  if (result.removedFiles > 0) parts.push(`${result.removedFiles} removed`);
  if (result.skippedFiles > 0) parts.push(`${result.skippedFiles} skipped`);
  const seconds = (result.elapsedMs / 1000).toFixed(1);
  let text = `${NAME}: ${parts.join(', ')} · ${plural(result.chunks, 'chunk')} (${result.embeddedChunks} embedded) in ${seconds} s`;
  if (result.errors.length > 0) {
    text += ` · ${plural(result.errors.length, 'error')}`;
  }
  return text;
}

/** "1 result in 2 files · 4 ms", with the index state when results may be partial. */
export function resultsLine(hitCount: number, fileCount: number, elapsedMs: number, indexState: string): string {
  if (hitCount === 0) {
    return indexState === 'empty' ? 'The index is empty: nothing indexed yet.' : 'No results.';
  }
  const base = `${plural(hitCount, 'result')} in ${plural(fileCount, 'file')} · ${Math.round(elapsedMs)} ms`;
  return indexState === 'indexing' ? `${base} · still indexing, results may be partial` : base;
}
