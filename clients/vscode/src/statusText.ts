// Status bar and "Show Status" texts. No `vscode` import.
import type { IndexResult, SearchResult, StatusResult } from './lspExt';
import type { EmptyKind } from './types';

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

/** The first sentence of a message (its first line, up to a full stop), for a tooltip or an
 * empty state: the output channel has the whole text. */
export function oneSentence(text: string): string {
  const line = oneLine(text);
  const stop = /\.\s/.exec(line);
  return stop === null ? line : line.slice(0, stop.index + 1);
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
    case 'indexing':
      // The count is the server's `$/progress` item's (the one progress): none here.
      return { text: `$(database) ${NAME}: indexing`, tooltip };
    case 'embedding': {
      // Keyword search covers everything; meaning only the part embedded so far: its share,
      // the same figure as the progress item's chunk count (and there when the backfill is
      // paused and no progress runs), no second count.
      const share = meaningShare(status);
      return { text: `$(search) ${NAME}: keyword ready · meaning ${share === undefined ? 'arriving' : `${share}%`}`, tooltip };
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
  const share = meaningShare(status);
  const lines = [
    `${NAME}: ${STATE_WORDS[status.state] ?? status.state} · ${countsText(status)}` +
      (status.pendingFiles > 0 ? ` · ${plural(status.pendingFiles, 'file')} pending` : '') +
      (share !== undefined ? ` · meaning in ${share}% of chunks` : ''),
    `Model: ${status.model.id}` + (status.model.dimension > 0
      ? ` (${[`${status.model.dimension}-d`, status.model.device, status.model.runtime].filter(Boolean).join(', ')})`
      : ''),
    `Store: ${status.store.kind === 'server' ? 'Qdrant server' : 'embedded'} at ${status.store.location}`,
  ];
  if (status.searchModes !== undefined && status.searchModes.length > 0) {
    lines.push(`Search modes: ${status.searchModes.join(', ')}`);
  }
  if (status.languageNotice !== undefined && status.languageNotice !== '') {
    lines.push(`Languages: ${status.languageNotice}`); // the server's sentence: what to set
  }
  if (status.lastError !== undefined && status.lastError !== '') {
    lines.push(`Last error: ${oneSentence(status.lastError)} (details in the Zero-Latency output)`); // the log has it whole
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

/** "Meaning matched in 1,039 of 9,053 chunks (11%) so far": the result's own coverage (the
 * server's current figures), absent once every chunk is embedded. */
export function coverageLine(coverage: SearchResult['coverage']): string | undefined {
  if (coverage === undefined || coverage.keywordChunks <= 0) {
    return undefined;
  }
  const share = Math.floor((coverage.embeddedChunks * 100) / coverage.keywordChunks);
  return `Meaning matched in ${coverage.embeddedChunks.toLocaleString('en-US')} of ${plural(coverage.keywordChunks, 'chunk')} (${share}%) so far; keyword matches cover all ${plural(coverage.files, 'file')}.`;
}

/**
 * Why a search has no hits, from the server's fields: a relevance floor that left passages out
 * (belowFloor), a refused folder (refusedFolders), a store that failed (state "error" with
 * lastError), nothing indexed yet (indexState "empty"), or no passage matching at all.
 */
export function emptyState(result: Pick<SearchResult, 'indexState' | 'belowFloor' | 'notice' | 'coverage' | 'mode'>, status?: StatusResult): { kind: EmptyKind; text: string } {
  const below = result.belowFloor ?? 0;
  if (below > 0) {
    return { kind: 'noGoodMatch', text: `No good match: ${plural(below, 'weaker passage')} left out.` };
  }
  const refused = status?.refusedFolders ?? [];
  if (result.indexState === 'empty' && refused.length > 0) {
    return { kind: 'refused', text: `Index refused: ${oneSentence(refused[0]!.reason)}` };
  }
  if (result.indexState === 'empty' && status?.state === 'error' && status.lastError !== undefined && status.lastError !== '') {
    return { kind: 'storeUnavailable', text: `Store unavailable: ${oneSentence(status.lastError)}` };
  }
  if (result.indexState === 'empty') {
    const busy = status !== undefined && ['indexing', 'loading', 'loadingModel'].includes(status.state);
    return { kind: 'nothingIndexed', text: busy ? 'Nothing indexed yet: the first index is running; results appear as it goes.' : 'Nothing indexed yet: no documents in this workspace.' };
  }
  if (result.indexState === 'indexing' || result.coverage !== undefined) {
    return { kind: 'noMatch', text: 'No match in the part indexed so far: this list updates as the index grows.' };
  }
  // Keyword mode matches words only: "or their meaning" would promise what it did not try.
  return { kind: 'noMatch', text: result.mode === 'keyword' ? 'No passage contains these words.' : 'No passage matches these words or their meaning.' };
}
