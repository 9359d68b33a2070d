// The extension host side: starts `zl serve` through vscode-languageclient, and wires the search
// view, the commands and the status bar to it. The server owns indexing and ranking; this file
// only forwards requests and shows answers.
import * as vscode from 'vscode';
import {
  LanguageClient,
  State,
  WorkDoneProgress,
  type LanguageClientOptions,
  type ProgressToken,
  type ServerOptions,
  type WorkDoneProgressBegin,
  type WorkDoneProgressEnd,
  type WorkDoneProgressReport,
} from 'vscode-languageclient/node';
import { findExecutable } from './executable';
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
  status,
  type RequestSender,
} from './requests';
import { fileLabel } from './results';
import { SearchViewProvider, VIEW_ID, openRange } from './searchView';
import {
  affectsServer,
  buildInitializationOptions,
  INSTALL_COMMAND,
  missingServerMessage,
  serverCommand,
} from './settings';
import { indexSummary, statusBar, statusSummary, type Phase, type ProgressInfo } from './statusText';
import type { Hit, StatusResult } from './types';

const BUSY_POLL_MS = 1500;
const IDLE_POLL_MS = 15000;
const QUICK_PICK_DEBOUNCE_MS = 250;

type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

class ZeroLatency implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<LanguageClient | undefined> | undefined;
  private phase: Phase = { kind: 'starting' };
  private lastStatus: StatusResult | undefined;
  private readonly progress = new Map<ProgressToken, ProgressInfo>();
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  private reindexCount = 0;
  /** The missing-server notification shows once until the settings change, not per keystroke. */
  private missingShown = false;
  private readonly item: vscode.StatusBarItem;
  private readonly output: vscode.OutputChannel;
  readonly view: SearchViewProvider;

  constructor(context: vscode.ExtensionContext) {
    this.output = vscode.window.createOutputChannel('Zero-Latency');
    this.item = vscode.window.createStatusBarItem('zeroLatency.status', vscode.StatusBarAlignment.Left, 0);
    this.item.name = 'Zero-Latency';
    this.item.command = 'zeroLatency.showStatus';
    this.view = new SearchViewProvider(context.extensionUri, { sender: () => this.sender() });
    this.render();
    this.item.show();
  }

  // --- the server ----------------------------------------------------------------------------

  /** The running client; starts it if needed. Rejects with a readable message otherwise. */
  async sender(): Promise<RequestSender> {
    const client = this.client?.isRunning() === true ? this.client : await this.start();
    if (client === undefined) {
      throw new Error(this.notRunningMessage());
    }
    return client;
  }

  start(): Promise<LanguageClient | undefined> {
    this.starting ??= this.doStart().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async doStart(): Promise<LanguageClient | undefined> {
    if (this.client !== undefined) {
      return this.client.isRunning() ? this.client : undefined;
    }
    const folders = vscode.workspace.workspaceFolders ?? [];
    if (folders.length === 0) {
      this.setPhase({ kind: 'noFolder' });
      return undefined;
    }
    const config = vscode.workspace.getConfiguration('zeroLatency');
    const { command, args } = serverCommand(config.get('server.path'), config.get('server.args'));
    const resolved = findExecutable(command, {
      PATH: process.env.PATH,
      PATHEXT: process.env.PATHEXT,
      platform: process.platform,
      cwd: folders[0]!.uri.fsPath,
    });
    if (resolved === undefined) {
      this.setPhase({ kind: 'missing', command });
      if (!this.missingShown) {
        this.missingShown = true;
        void this.showMissingServer(command);
      }
      return undefined;
    }
    this.setPhase({ kind: 'starting' });
    const serverOptions: ServerOptions = { command: resolved, args };
    const clientOptions: LanguageClientOptions = {
      // Every file document: the server decides what it indexes (include/exclude, .gitignore).
      documentSelector: [{ scheme: 'file' }],
      initializationOptions: () =>
        buildInitializationOptions((key) => vscode.workspace.getConfiguration('zeroLatency').inspect(key)),
      outputChannel: this.output,
      middleware: {
        // Also feeds the status bar; `next` keeps the client's own progress UI.
        handleWorkDoneProgress: (token, params, next) => {
          this.onProgress(token, params);
          next(token, params);
        },
      },
      // A rejected `initialize` (e.g. a setting of the wrong type) will not fix itself by
      // retrying: give up, and let start()'s rejection below show the server's message.
      initializationFailedHandler: () => false,
    };
    const client = new LanguageClient('zeroLatency', 'Zero-Latency', serverOptions, clientOptions);
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.setPhase({ kind: 'running' });
        void this.refreshStatus();
      } else if (event.newState === State.Stopped) {
        this.progress.clear();
        this.setPhase({ kind: 'stopped' });
      }
    });
    this.client = client;
    try {
      await client.start();
      return client;
    } catch (error) {
      this.client = undefined;
      const message = errorMessage(error);
      this.setPhase({ kind: 'stopped', reason: message });
      void this.showError(`Zero-Latency: the server failed to start: ${message}`, true);
      await client.dispose().catch(() => undefined);
      return undefined;
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    this.clearPoll();
    this.progress.clear();
    this.lastStatus = undefined;
    if (client !== undefined) {
      await client.dispose().catch((error: unknown) => this.output.appendLine(`stop: ${errorMessage(error)}`));
    }
  }

  async restart(): Promise<void> {
    this.missingShown = false;
    await this.starting;
    await this.stop();
    await this.start();
  }

  /** Settings that go to `initialize` only apply to a new server process. */
  onConfigurationChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!affectsServer((section) => event.affectsConfiguration(section))) {
      return;
    }
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
    }
    // Typing a path in the settings UI fires one change per keystroke.
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restart();
    }, 750);
  }

  onFoldersChanged(): void {
    // The client forwards folder changes itself; only the "no folder yet" case needs a start.
    if (this.client === undefined && (vscode.workspace.workspaceFolders ?? []).length > 0) {
      void this.start();
    }
  }

  private notRunningMessage(): string {
    switch (this.phase.kind) {
      case 'missing':
        return missingServerMessage(this.phase.command);
      case 'noFolder':
        return 'Zero-Latency: open a folder to search its docs.';
      case 'stopped':
        return `Zero-Latency: the server is not running${this.phase.reason !== undefined ? `: ${this.phase.reason}` : ''}.`;
      default:
        return 'Zero-Latency: the server is not running.';
    }
  }

  private async showMissingServer(command: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(missingServerMessage(command), 'Open Settings', 'Copy Install Command');
    if (choice === 'Open Settings') {
      await openSettings();
    } else if (choice === 'Copy Install Command') {
      await vscode.env.clipboard.writeText(INSTALL_COMMAND);
    }
  }

  /** The store cannot be used as it is but a forced reindex rebuilds it: offer that. */
  private async offerRebuild(message: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(message, 'Rebuild Index', 'Show Log');
    if (choice === 'Rebuild Index') {
      await this.reindex(true);
    } else if (choice === 'Show Log') {
      this.output.show(true);
    }
  }

  private async showError(message: string, withSettings: boolean): Promise<void> {
    const buttons = withSettings ? ['Show Log', 'Open Settings'] : ['Show Log'];
    const choice = await vscode.window.showErrorMessage(message, ...buttons);
    if (choice === 'Show Log') {
      this.output.show(true);
    } else if (choice === 'Open Settings') {
      await openSettings();
    }
  }

  // --- status bar ------------------------------------------------------------------------------

  private onProgress(token: ProgressToken, value: ProgressValue): void {
    if (value.kind === 'end') {
      this.progress.delete(token);
      void this.refreshStatus(); // counts changed: show them now rather than at the next poll
    } else {
      const previous = this.progress.get(token) ?? {};
      this.progress.set(token, {
        title: value.kind === 'begin' ? value.title : previous.title,
        message: value.message ?? previous.message,
        percentage: value.percentage ?? previous.percentage,
      });
    }
    this.render();
  }

  private setPhase(phase: Phase): void {
    this.phase = phase;
    if (phase.kind !== 'running') {
      this.lastStatus = undefined;
      this.clearPoll();
    }
    this.render();
  }

  private render(): void {
    const latest = [...this.progress.values()].pop();
    const phase: Phase = this.phase.kind === 'running'
      ? { kind: 'running', ...(this.lastStatus !== undefined ? { status: this.lastStatus } : {}), ...(latest !== undefined ? { progress: latest } : {}) }
      : this.phase;
    const view = statusBar(phase);
    this.item.text = view.text;
    this.item.tooltip = view.tooltip;
    this.view.setStatus(view.text.replace(/^\$\([^)]*\)\s*/, '')); // codicons do not render there
  }

  async refreshStatus(): Promise<StatusResult | undefined> {
    const client = this.client;
    if (client === undefined || !client.isRunning()) {
      return undefined;
    }
    this.clearPoll();
    try {
      this.lastStatus = await status(client);
    } catch (error) {
      this.output.appendLine(`docs/status failed: ${errorMessage(error)}`);
    }
    this.render();
    // Poll quickly while the server is busy (edits re-index without $/progress), slowly otherwise.
    const busy = this.progress.size > 0 || this.lastStatus === undefined || this.lastStatus.state !== 'idle' || this.lastStatus.pendingFiles > 0;
    if (this.client === client) {
      this.pollTimer = setTimeout(() => void this.refreshStatus(), busy ? BUSY_POLL_MS : IDLE_POLL_MS);
    }
    return this.lastStatus;
  }

  private clearPoll(): void {
    if (this.pollTimer !== undefined) {
      clearTimeout(this.pollTimer);
      this.pollTimer = undefined;
    }
  }

  // --- commands --------------------------------------------------------------------------------

  async searchDocs(): Promise<void> {
    await vscode.commands.executeCommand(`${VIEW_ID}.focus`);
    const editor = vscode.window.activeTextEditor;
    const selected = editor !== undefined && !editor.selection.isEmpty ? editor.document.getText(editor.selection).trim() : '';
    if (selected !== '' && !selected.includes('\n')) {
      this.view.setQuery(selected);
    }
  }

  async quickSearch(): Promise<void> {
    const sender = await this.sender().catch((error: unknown) => {
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
            description: `${fileLabel(hit, folders)}:${hit.range.start.line + 1}`,
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
        void openRange(chosen.hit.uri, chosen.hit.range);
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

  /** `force` re-embeds everything, and rebuilds a store that is damaged or was built for
   * another model (the server's RequestFailed kinds storeCorrupt / storeIncompatible). */
  async reindex(force = false): Promise<void> {
    try {
      await this.sender();
    } catch (error) {
      void vscode.window.showErrorMessage(errorMessage(error));
      return;
    }
    const client = this.client;
    if (client === undefined) {
      return;
    }
    const workDoneToken = `zero-latency/reindex/${++this.reindexCount}`;
    await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: 'Zero-Latency: reindexing', cancellable: true },
      async (progress, token) => {
        let reported = 0;
        const subscription = client.onProgress(WorkDoneProgress.type, workDoneToken, (value) => {
          if (value.kind === 'end') {
            return;
          }
          const percentage = value.percentage ?? reported;
          progress.report({ message: value.message, increment: Math.max(0, percentage - reported) });
          reported = Math.max(reported, percentage);
        });
        try {
          const result = await index(client, buildIndexParams({ workDoneToken, force }), token);
          for (const failure of result.errors) {
            this.output.appendLine(`index error: ${failure.uri}: ${failure.message}`);
          }
          const summary = indexSummary(result);
          this.output.appendLine(summary);
          if (result.errors.length > 0) {
            void vscode.window.showWarningMessage(summary, 'Show Errors').then((choice) => choice !== undefined && this.output.show(true));
          } else {
            void vscode.window.showInformationMessage(summary);
          }
        } catch (error) {
          if (isCancelled(error) || token.isCancellationRequested) {
            void vscode.window.showInformationMessage('Zero-Latency: reindex cancelled.');
          } else if (rebuildFixes(error)) {
            void this.offerRebuild(`Zero-Latency: reindex failed: ${errorMessage(error)}`);
          } else {
            // A missing model is fixed in the settings (zeroLatency.model); the rest in the log.
            void this.showError(`Zero-Latency: reindex failed: ${errorMessage(error)}`, errorKind(error) === 'modelUnavailable');
          }
        } finally {
          subscription.dispose();
          this.progress.delete(workDoneToken);
          void this.refreshStatus();
        }
      },
    );
  }

  async showStatus(): Promise<void> {
    if (this.phase.kind === 'missing') {
      return this.showMissingServer(this.phase.command);
    }
    let result: StatusResult | undefined;
    try {
      await this.sender();
      result = await this.refreshStatus();
    } catch (error) {
      void this.showError(errorMessage(error), this.phase.kind !== 'noFolder');
      return;
    }
    if (result === undefined) {
      void this.showError('Zero-Latency: the server did not answer docs/status (see the log).', false);
      return;
    }
    this.output.appendLine(`docs/status: ${JSON.stringify(result)}`);
    const [first, ...rest] = statusSummary(result).split('\n');
    const choice = await vscode.window.showInformationMessage(first ?? 'Zero-Latency', { modal: true, detail: rest.join('\n') }, 'Reindex', 'Show Log');
    if (choice === 'Reindex') {
      await this.reindex();
    } else if (choice === 'Show Log') {
      this.output.show(true);
    }
  }

  dispose(): void {
    this.clearPoll();
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
    }
    this.view.dispose();
    this.item.dispose();
    this.output.dispose();
  }
}

function openSettings(): Thenable<unknown> {
  return vscode.commands.executeCommand('workbench.action.openSettings', 'zeroLatency.server');
}

let instance: ZeroLatency | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const app = new ZeroLatency(context);
  instance = app;
  context.subscriptions.push(
    app,
    vscode.window.registerWebviewViewProvider(VIEW_ID, app.view),
    vscode.commands.registerCommand('zeroLatency.searchDocs', () => app.searchDocs()),
    vscode.commands.registerCommand('zeroLatency.quickSearch', () => app.quickSearch()),
    vscode.commands.registerCommand('zeroLatency.reindex', () => app.reindex()),
    vscode.commands.registerCommand('zeroLatency.showStatus', () => app.showStatus()),
    vscode.commands.registerCommand('zeroLatency.restartServer', () => app.restart()),
    vscode.workspace.onDidChangeConfiguration((event) => app.onConfigurationChanged(event)),
    vscode.workspace.onDidChangeWorkspaceFolders(() => app.onFoldersChanged()),
  );
  // Index in the background from the start, so the first search is already fast.
  void app.start();
}

export async function deactivate(): Promise<void> {
  await instance?.stop();
  instance = undefined;
}
