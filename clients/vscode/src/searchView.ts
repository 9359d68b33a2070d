// The activity bar search view: a webview that posts queries here; this side validates them,
// asks the server and posts back grouped results.
import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { parseFromView } from './messages';
import { buildSearchParams, isCancelled, errorMessage, isSearchMode, search, type RequestSender } from './requests';
import { groupByFile } from './results';
import { resultsLine } from './statusText';
import type { Range } from './lspExt';
import type { SearchMode, ToView } from './types';

export const VIEW_ID = 'zeroLatency.search';

export interface SearchBackend {
  /** The running client, once the server is up (waits for start-up). */
  sender(): Promise<RequestSender>;
}

export class SearchViewProvider implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private inFlight: vscode.CancellationTokenSource | undefined;
  /** URIs of the results on screen: the only ones an `open` message may open. */
  private shownUris = new Set<string>();
  private pendingQuery: string | undefined;
  private statusText = '';

  constructor(private readonly extensionUri: vscode.Uri, private readonly backend: SearchBackend) {}

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

  private async runSearch(seq: number, query: string, mode: SearchMode): Promise<void> {
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
      this.post({ type: 'results', seq, groups: [], summary: '' });
      return;
    }
    const source = new vscode.CancellationTokenSource();
    this.inFlight = source;
    try {
      const sender = await this.backend.sender();
      const result = await search(sender, params, source.token);
      if (source.token.isCancellationRequested) {
        return;
      }
      const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
      const groups = groupByFile(result.hits, folders);
      this.shownUris = new Set(groups.map((g) => g.uri));
      this.post({
        type: 'results',
        seq,
        groups,
        summary: resultsLine(result.hits.length, groups.length, result.elapsedMs, result.indexState),
        ...(result.notice !== undefined ? { notice: result.notice } : {}),
      });
    } catch (error) {
      if (!isCancelled(error) && !source.token.isCancellationRequested) {
        this.post({ type: 'error', seq, message: errorMessage(error) });
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
