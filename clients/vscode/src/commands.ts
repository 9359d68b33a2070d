// The commands: Search Docs, Search Docs (Quick Pick), Reindex, Show Status, Restart Server and
// the views' Open. Each asks the server module for a running client and shows the answer.
import * as vscode from 'vscode';
import type { Hit, Range, StatusResult } from './lspExt';
import {
  buildIndexParams,
  buildSearchParams,
  errorKind,
  errorMessage,
  index,
  isCancelled,
  isSearchMode,
  rebuildFixes,
  search,
} from './requests';
import { fileLabel, targetRange } from './results';
import { openRange, VIEW_ID, type SearchViewProvider } from './searchView';
import type { Server } from './server';
import { indexSummary, statusSummary } from './statusText';

const QUICK_PICK_DEBOUNCE_MS = 250;
/** Opens a file at a range, selecting it (the Related view's items run it). */
export const OPEN_LOCATION_COMMAND = 'zeroLatency.openLocation';

export class Commands {
  constructor(private readonly server: Server, private readonly view: SearchViewProvider) {}

  register(): vscode.Disposable[] {
    return [
      vscode.commands.registerCommand('zeroLatency.searchDocs', () => this.searchDocs()),
      vscode.commands.registerCommand('zeroLatency.quickSearch', () => this.quickSearch()),
      vscode.commands.registerCommand('zeroLatency.reindex', () => this.reindex()),
      vscode.commands.registerCommand('zeroLatency.showStatus', () => this.showStatus()),
      vscode.commands.registerCommand('zeroLatency.restartServer', () => this.server.restart()),
      vscode.commands.registerCommand('zeroLatency.openLocation', (uri: string, range: Range) => openRange(uri, range)),
    ];
  }

  async searchDocs(): Promise<void> {
    await vscode.commands.executeCommand(`${VIEW_ID}.focus`);
    const editor = vscode.window.activeTextEditor;
    const selected = editor !== undefined && !editor.selection.isEmpty ? editor.document.getText(editor.selection).trim() : '';
    if (selected !== '' && !selected.includes('\n')) {
      this.view.setQuery(selected);
    }
  }

  async quickSearch(): Promise<void> {
    const sender = await this.server.sender().catch((error: unknown) => {
      void vscode.window.showErrorMessage(errorMessage(error));
      return undefined;
    });
    if (sender === undefined) {
      return;
    }
    const config = vscode.workspace.getConfiguration('zeroLatency');
    const configuredMode = config.get<string>('search.defaultMode');
    type HitItem = vscode.QuickPickItem & { hit: Hit };
    const pick = vscode.window.createQuickPick<HitItem>();
    pick.placeholder = 'Search docs (Zero-Latency)';
    pick.matchOnDescription = true;
    pick.matchOnDetail = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let inFlight: vscode.CancellationTokenSource | undefined;
    const folders = (vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString());
    const run = async (value: string): Promise<void> => {
      inFlight?.cancel();
      const params = buildSearchParams(value, {
        mode: isSearchMode(configuredMode) ? configuredMode : 'hybrid',
        limit: config.get<number>('search.limit'),
        include: config.get<string[]>('search.include'),
        exclude: config.get<string[]>('search.exclude'),
      });
      if (params === undefined) {
        pick.items = [];
        return;
      }
      const source = new vscode.CancellationTokenSource();
      inFlight = source;
      pick.busy = true;
      try {
        const result = await search(sender, params, source.token);
        if (!source.token.isCancellationRequested) {
          // alwaysShow: the server already matched; the quick pick must not filter again.
          pick.items = result.hits.map((hit) => ({
            label: hit.headingPath.length > 0 ? hit.headingPath[hit.headingPath.length - 1]! : hit.snippet.slice(0, 60),
            description: `${fileLabel(hit, folders)}:${targetRange(hit).start.line + 1}`,
            detail: hit.snippet.replace(/\s+/g, ' '),
            alwaysShow: true,
            hit,
          }));
          pick.title = result.notice;
        }
      } catch (error) {
        if (!isCancelled(error)) {
          pick.title = errorMessage(error);
        }
      } finally {
        if (inFlight === source) {
          pick.busy = false;
          inFlight = undefined;
        }
        source.dispose();
      }
    };
    pick.onDidChangeValue((value) => {
      if (timer !== undefined) {
        clearTimeout(timer);
      }
      timer = setTimeout(() => void run(value), QUICK_PICK_DEBOUNCE_MS);
    });
    pick.onDidAccept(() => {
      const chosen = pick.selectedItems[0];
      if (chosen !== undefined) {
        pick.hide();
        void openRange(chosen.hit.uri, targetRange(chosen.hit));
      }
    });
    pick.onDidHide(() => {
      inFlight?.cancel();
      if (timer !== undefined) {
        clearTimeout(timer);
      }
      pick.dispose();
    });
    pick.show();
  }

  /**
   * `force` re-embeds everything, and rebuilds a store that is damaged or was built for another
   * model (the server's RequestFailed kinds storeCorrupt / storeIncompatible). No progress UI of
   * its own: the server reports the run with `$/progress` on a token it creates, which VS Code
   * shows as the one progress item.
   */
  async reindex(force = false): Promise<void> {
    let sender;
    try {
      sender = await this.server.sender();
    } catch (error) {
      void vscode.window.showErrorMessage(errorMessage(error));
      return;
    }
    const output = this.server.output;
    try {
      const result = await index(sender, buildIndexParams({ force }));
      for (const failure of result.errors) {
        output.appendLine(`index error: ${failure.uri}: ${failure.message}`);
      }
      const summary = indexSummary(result);
      output.appendLine(summary);
      if (result.errors.length > 0) {
        void vscode.window.showWarningMessage(summary, 'Show Errors').then((choice) => choice !== undefined && output.show(true));
      } else {
        void vscode.window.showInformationMessage(summary);
      }
    } catch (error) {
      if (isCancelled(error)) {
        void vscode.window.showInformationMessage('Zero-Latency: reindex cancelled.');
      } else if (rebuildFixes(error)) {
        void this.offerRebuild(`Zero-Latency: reindex failed: ${errorMessage(error)}`);
      } else {
        // A missing model is fixed in the settings (zeroLatency.model); the rest in the log.
        void this.server.showError(`Zero-Latency: reindex failed: ${errorMessage(error)}`, errorKind(error) === 'modelUnavailable');
      }
    }
  }

  /** The store cannot be used as it is but a forced reindex rebuilds it: offer that. */
  private async offerRebuild(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, 'Rebuild Index', 'Show Log');
    if (choice === 'Rebuild Index') {
      await this.reindex(true);
    } else if (choice === 'Show Log') {
      this.server.output.show(true);
    }
  }

  async showStatus(): Promise<void> {
    const phase = this.server.phase;
    if (phase.kind === 'missing') {
      return this.server.showMissingServer(phase.command);
    }
    let result: StatusResult | undefined;
    try {
      await this.server.sender();
      result = await this.server.refreshStatus();
    } catch (error) {
      void this.server.showError(errorMessage(error), phase.kind !== 'noFolder');
      return;
    }
    if (result === undefined) {
      void this.server.showError('Zero-Latency: the server did not answer docs/status (see the log).', false);
      return;
    }
    this.server.output.appendLine(`docs/status: ${JSON.stringify(result)}`);
    const [first, ...rest] = statusSummary(result).split('\n');
    const choice = await vscode.window.showInformationMessage(first ?? 'Zero-Latency', { modal: true, detail: rest.join('\n') }, 'Reindex', 'Show Log');
    if (choice === 'Reindex') {
      await this.reindex();
    } else if (choice === 'Show Log') {
      this.server.output.show(true);
    }
  }
}
