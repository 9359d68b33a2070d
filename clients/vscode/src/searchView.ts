// The activity bar search view: a webview that posts queries here; this side validates them,
// asks the server and posts back grouped results.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { parseFromView } from './messages';
import { buildSearchParams, isCancelled, errorKind, errorMessage, isSearchMode, search, type RequestSender } from './requests';
import { arrangeHits } from './results';
import { coverageLine, emptyState, resultsLine } from './statusText';
import type { Range, StatusResult } from './lspExt';
import type { SearchMode, ToView } from './types';

export const VIEW_ID = 'zeroLatency.search';

export interface SearchBackend {
  /** The running client, once the server is up (waits for start-up). */
  sender(): Promise<RequestSender>;
  /** The server's last status (docs/status or its zl/status push), if any. */
  status(): StatusResult | undefined;
  /** Fires when the server pushes a new status. */
  onStatus: vscode.Event<StatusResult | undefined>;
}

/** While the index grows an open result list is asked again, at most this often… */
const REFRESH_EVERY_MS = 4000;
/** …once the pushes rest this long (they come up to twice a second). */
const REFRESH_DEBOUNCE_MS = 1000;

/** What the index covers: a change means an open list may have changed. */
function coverageKey(status: StatusResult | undefined): string {
  if (status === undefined) {
    return '';
  }
  return `${status.state}/${status.files}/${status.keywordChunks ?? status.chunks}/${status.embeddedChunks ?? ''}`;
}

export class SearchViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private inFlight: vscode.CancellationTokenSource | undefined;
  /** URIs of the results on screen: the only ones an `open` message may open. */
  private shownUris = new Set<string>();
  private pendingQuery: string | undefined;
  private statusText = '';
  /** The query on screen (the webview's seq for it) and whether its answer was partial. */
  private shown: { seq: number; query: string; mode: SearchMode; partial: boolean; key: string; hits: number } | undefined;
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  private lastRefresh = 0;
  private readonly statusSubscription: vscode.Disposable;

  constructor(private readonly extensionUri: vscode.Uri, private readonly backend: SearchBackend) {
    this.statusSubscription = backend.onStatus((value) => this.onStatus(value));
  }

  /**
   * The index grew (or finished) while a partial answer is on screen: ask again, debounced and
   * at most every REFRESH_EVERY_MS, so the list and its coverage line follow the index without
   * retyping. Nothing is asked while the index does not change or once an answer was complete.
   */
  private onStatus(value: StatusResult | undefined): void {
    const shown = this.shown;
    if (shown === undefined || !shown.partial || this.view === undefined || coverageKey(value) === shown.key) {
      return;
    }
    if (this.refreshTimer !== undefined) {
      clearTimeout(this.refreshTimer);
    }
    const wait = Math.max(REFRESH_DEBOUNCE_MS, this.lastRefresh + REFRESH_EVERY_MS - Date.now());
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = undefined;
      const current = this.shown;
      if (current !== undefined && current.partial && this.inFlight === undefined) {
        this.lastRefresh = Date.now();
        void this.runSearch(current.seq, current.query, current.mode, true);
      }
    }, wait);
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    const webview = view.webview;
    webview.options = {
      enableScripts: true,
      localResourceRoots: [vscode.Uri.joinPath(this.extensionUri, 'out', 'webview'), vscode.Uri.joinPath(this.extensionUri, 'media')],
    };
    webview.html = this.html(webview);
    webview.onDidReceiveMessage((message: unknown) => void this.onMessage(message));
    view.onDidDispose(() => {
      this.cancelInFlight();
      this.view = undefined;
    });
  }

  /** Puts a query in the box and runs it (e.g. the editor's selection). */
  setQuery(query: string): void {
    if (this.view === undefined) {
      this.pendingQuery = query; // sent with `init` once the view resolves
      return;
    }
    this.post({ type: 'setQuery', query });
  }

  setStatus(text: string): void {
    this.statusText = text;
    this.post({ type: 'status', text });
  }

  dispose(): void {
    this.cancelInFlight();
    if (this.refreshTimer !== undefined) {
      clearTimeout(this.refreshTimer);
    }
    this.statusSubscription.dispose();
  }

  private post(message: ToView): void {
    void this.view?.webview.postMessage(message);
  }

  private cancelInFlight(): void {
    this.inFlight?.cancel();
    this.inFlight?.dispose();
    this.inFlight = undefined;
  }

  private async onMessage(raw: unknown): Promise<void> {
    const message = parseFromView(raw);
    if (message === undefined) {
      return;
    }
    switch (message.type) {
      case 'ready': {
        const configured = vscode.workspace.getConfiguration('zeroLatency').get<string>('search.defaultMode');
        const mode: SearchMode = isSearchMode(configured) ? configured : 'hybrid';
        this.post({ type: 'init', mode, query: this.pendingQuery ?? '' });
        this.pendingQuery = undefined;
        this.post({ type: 'status', text: this.statusText });
        return;
      }
      case 'search':
        return this.runSearch(message.seq, message.query, message.mode);
      case 'open':
        if (this.shownUris.has(message.uri)) {
          await openRange(message.uri, message.range);
        }
        return;
    }
  }

  private async runSearch(seq: number, query: string, mode: SearchMode, refresh = false): Promise<void> {
    // Typing fast: the previous request is cancelled on the server too ($/cancelRequest).
    this.cancelInFlight();
    const config = vscode.workspace.getConfiguration('zeroLatency');
    const params = buildSearchParams(query, {
      mode,
      limit: config.get<number>('search.limit'),
      include: config.get<string[]>('search.include'),
      exclude: config.get<string[]>('search.exclude'),
    });
    if (params === undefined) {
      this.shownUris.clear();
      this.shown = undefined;
      this.post({ type: 'results', seq, groups: [], summary: '' });
      return;
    }
    const source = new vscode.CancellationTokenSource();
    this.inFlight = source;
    try {
      const sender = await this.backend.sender();
      const keyBefore = coverageKey(this.backend.status());
      const result = await search(sender, params, source.token);
      if (source.token.isCancellationRequested) {
        return;
      }
      const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
      const groups = arrangeHits(result.hits, folders, config.get<boolean>('search.groupByFile') === true);
      const status = this.backend.status();
      const partial = result.coverage !== undefined || result.indexState !== 'ready' ||
        (status !== undefined && ['indexing', 'embedding', 'loading', 'loadingModel'].includes(status.state));
      const previous = this.shown;
      this.shown = { seq, query, mode, partial, key: keyBefore, hits: result.hits.length };
      this.shownUris = new Set(groups.map((g) => g.uri));
      let summary = resultsLine(result.hits.length, groups.length, result.elapsedMs, result.indexState);
      if (refresh && previous !== undefined && previous.seq === seq) {
        // Say what changed, so a list that moves under the user does not surprise them.
        const delta = result.hits.length - previous.hits;
        summary = `${summary} · updated as the index grew${delta !== 0 ? ` (${delta > 0 ? '+' : ''}${delta})` : ''}`;
      }
      const coverage = coverageLine(result.coverage);
      this.post({
        type: 'results',
        seq,
        groups,
        summary,
        ...(result.notice !== undefined ? { notice: result.notice } : {}),
        ...(result.hits.length === 0 ? { empty: emptyState(result, status) } : {}),
        // The server's notice says the same while it is there: one line, not two.
        ...(coverage !== undefined && result.notice === undefined ? { coverage } : {}),
        ...(refresh ? { refreshed: true } : {}),
      });
      if (partial && coverageKey(this.backend.status()) !== keyBefore) {
        this.onStatus(this.backend.status()); // the index moved on while we asked
      }
    } catch (error) {
      if (!isCancelled(error) && !source.token.isCancellationRequested) {
        const message = errorMessage(error);
        this.post({ type: 'error', seq, message: errorKind(error) === 'storeUnavailable' ? `Store unavailable: ${message}` : message });
      }
    } finally {
      if (this.inFlight === source) {
        this.inFlight = undefined;
      }
      source.dispose();
    }
  }

  private html(webview: vscode.Webview): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    const script = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'out', 'webview', 'main.js'));
    const style = webview.asWebviewUri(vscode.Uri.joinPath(this.extensionUri, 'media', 'search.css'));
    const csp = `default-src 'none'; style-src ${webview.cspSource}; script-src 'nonce-${nonce}';`;
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${style.toString()}" rel="stylesheet">
<title>Zero-Latency search</title>
</head>
<body>
<div class="bar">
  <input id="query" type="search" placeholder="Search docs" aria-label="Search docs" autofocus>
  <select id="mode" aria-label="Search mode" title="Search mode">
    <option value="hybrid">hybrid</option>
    <option value="semantic">semantic</option>
    <option value="keyword">keyword</option>
  </select>
</div>
<div id="status"></div>
<div id="notice" hidden></div>
<div id="coverage" hidden></div>
<div id="summary" aria-live="polite"></div>
<div id="results" role="list"></div>
<script type="module" nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
  }
}

/** Opens the file with `range` (a hit's matchRange, else its range: results.targetRange)
 * selected and in view, the cursor at its start. */
export async function openRange(uri: string, range: Range): Promise<void> {
  const target = new vscode.Range(range.start.line, range.start.character, range.end.line, range.end.character);
  // showTextDocument takes a range and puts the cursor at its end: open with the cursor at the
  // start, then extend the selection backwards from the end so the cursor stays there.
  const start = new vscode.Selection(target.start, target.start);
  const editor = await vscode.window.showTextDocument(vscode.Uri.parse(uri), { selection: start, preview: true });
  editor.selection = new vscode.Selection(target.end, target.start);
  editor.revealRange(target, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
}
