// The server's lifecycle: finds and starts `zl serve` through vscode-languageclient, restarts it
// when a setting it starts with changes, stops it, and passes on what it pushes (zl/status).
// Commands, the status bar and the views ask this module for a running client.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as os from 'node:os';
import * as readline from 'node:readline';
import * as vscode from 'vscode';
import { NotificationType } from 'vscode-jsonrpc';
import { LanguageClient, State, type LanguageClientOptions, type StreamInfo } from 'vscode-languageclient/node';
import { findExecutable, isRelativePath } from './executable';
import { statusChanged, type StatusResult } from './lspExt';
import { errorMessage, status, type RequestSender } from './requests';
import {
  affectsServer,
  buildInitializationOptions,
  ignoredSettingsMessage,
  INSTALL_COMMAND,
  machineSettingsIn,
  machineSettingsInspected,
  missingServerMessage,
  relativeServerPathMessage,
  serverCommand,
  serverSettingsCommand,
  SETTINGS_QUERY,
} from './settings';
import { isMirroredLogLine } from './serverLog';
import type { Phase } from './statusText';

/** Typing a path in the settings UI fires one change per keystroke. */
const RESTART_DEBOUNCE_MS = 750;
/** After `exit`, a server that has not gone by then is killed. */
const EXIT_GRACE_MS = 5000;
const FALLBACK_SEEN_KEY = 'zeroLatency.modelFallbackWarned';
const showMessage = new NotificationType<{ type: number; message: string }>('window/showMessage');

export class Server implements vscode.Disposable {
  private client: LanguageClient | undefined;
  /** The `zl serve` process this window started (spawnServer), while it runs. */
  private process: ChildProcessWithoutNullStreams | undefined;
  private starting: Promise<LanguageClient | undefined> | undefined;
  private phaseValue: Phase = { kind: 'starting' };
  private restartTimer: ReturnType<typeof setTimeout> | undefined;
  /** The missing-server notification shows once until the settings change, not per keystroke. */
  private missingShown = false;
  /** The ignored-workspace-settings warning shows once per window, not per restart. */
  private ignoredChecked = false;
  private readonly phaseEmitter = new vscode.EventEmitter<Phase>();
  private readonly statusEmitter = new vscode.EventEmitter<StatusResult | undefined>();
  /** The server pushed (or answered) a new status. */
  readonly onDidChangeStatus = this.statusEmitter.event;
  /** The last error written to the output channel in full (each once). */
  private lastErrorLogged = '';
  /** The phase changed, or the server pushed (or answered) a new status. */
  readonly onDidChangePhase = this.phaseEmitter.event;
  readonly output: vscode.OutputChannel;

  /** `memento` remembers the last model-fallback warning shown (once per change, as the CLI). */
  constructor(private readonly memento?: vscode.Memento) {
    this.output = vscode.window.createOutputChannel('Zero-Latency');
  }

  get phase(): Phase {
    return this.phaseValue;
  }

  /** The server's last status, while it runs. */
  get status(): StatusResult | undefined {
    return this.phaseValue.kind === 'running' ? this.phaseValue.status : undefined;
  }

  /**
   * The server's window/showMessage, less a repeat of the default model's fallback warning
   * ("Default model … is unavailable"): shown once until its text changes (the model setting or
   * what is installed), as `zl` does; it still goes to the output channel every time.
   */
  private showServerMessage(type: number, message: string): void {
    if (message.startsWith('Default model ') && this.memento !== undefined) {
      this.output.appendLine(message);
      if (this.memento.get<string>(FALLBACK_SEEN_KEY) === message) {
        return;
      }
      void this.memento.update(FALLBACK_SEEN_KEY, message);
    }
    if (type === 1) {
      void vscode.window.showErrorMessage(message);
    } else if (type === 2) {
      void vscode.window.showWarningMessage(message);
    } else {
      void vscode.window.showInformationMessage(message);
    }
  }

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
    if (!this.ignoredChecked) {
      this.ignoredChecked = true;
      void this.warnIgnoredWorkspaceSettings();
    }
    // Only the user's own values (User, or Remote/machine, settings): a workspace does not
    // choose the program that runs (they are machine scope in package.json too).
    const config = vscode.workspace.getConfiguration('zeroLatency');
    const { command, args } = serverCommand(config.inspect('server.path')?.globalValue, config.inspect('server.args')?.globalValue);
    if (isRelativePath(command, process.platform)) {
      const message = relativeServerPathMessage(command);
      this.setPhase({ kind: 'stopped', reason: message });
      if (!this.missingShown) {
        this.missingShown = true;
        void this.showError(message, true);
      }
      return undefined;
    }
    const resolved = findExecutable(command, {
      PATH: process.env.PATH,
      PATHEXT: process.env.PATHEXT,
      platform: process.platform,
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
    const clientOptions: LanguageClientOptions = {
      // Every file document: the server decides what it indexes (include/exclude, .gitignore).
      documentSelector: [{ scheme: 'file' }],
      initializationOptions: () =>
        buildInitializationOptions((key) => vscode.workspace.getConfiguration('zeroLatency').inspect(key)),
      outputChannel: this.output,
      // A rejected `initialize` (e.g. a setting of the wrong type) will not fix itself by
      // retrying: give up, and let start()'s rejection below show the server's message.
      initializationFailedHandler: () => false,
    };
    const client = new LanguageClient('zeroLatency', 'Zero-Latency', () => this.spawnServer(resolved, args), clientOptions);
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.setPhase({ kind: 'running' });
        void this.fetchStatus(client); // the pushes start with the next change
      } else if (event.newState === State.Stopped) {
        this.setPhase({ kind: 'stopped' });
      }
    });
    // The server pushes docs/status when it changes: nothing polls.
    client.onNotification(statusChanged, (pushed) => this.setStatus(client, pushed));
    this.client = client;
    try {
      await client.start();
      // Replaces the client's own handler (registered by start()).
      client.onNotification(showMessage, (params) => this.showServerMessage(params.type, params.message));
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

  /**
   * Starts the server process. Its stderr goes to the output channel line by line, less the
   * server's own log records that it also sends as window/logMessage (which the client writes
   * there too): each log line shows once. Tracebacks, debug lines and anything else stay.
   */
  private spawnServer(command: string, args: string[]): Promise<StreamInfo> {
    // Not in a workspace folder: `python3 -m zero_latency` there would import the repository's
    // own module of that name.
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: os.homedir() });
    const lines = readline.createInterface({ input: child.stderr, crlfDelay: Infinity });
    lines.on('line', (line) => {
      if (!isMirroredLogLine(line)) {
        this.output.appendLine(line);
      }
    });
    child.on('error', (error) => this.output.appendLine(`zl serve: ${error.message}`));
    child.once('exit', () => {
      if (this.process === child) {
        this.process = undefined;
      }
    });
    this.process = child;
    return Promise.resolve({ reader: child.stdout, writer: child.stdin });
  }

  /**
   * One warning per window when the workspace sets machine settings (what runs, where text
   * goes): they are ignored. VS Code drops a workspace value of a `machine` setting before
   * inspect() sees it, so the settings files are read too: each folder's .vscode/settings.json
   * and the .code-workspace file.
   */
  private async warnIgnoredWorkspaceSettings(): Promise<void> {
    const config = vscode.workspace.getConfiguration('zeroLatency');
    const inspected = machineSettingsInspected((key) => config.inspect(key));
    const inFiles = new Set<string>();
    const files: Array<{ uri: vscode.Uri; inSettingsKey: boolean }> = (vscode.workspace.workspaceFolders ?? []).map(
      (folder) => ({ uri: vscode.Uri.joinPath(folder.uri, '.vscode', 'settings.json'), inSettingsKey: false }),
    );
    const workspaceFile = vscode.workspace.workspaceFile;
    if (workspaceFile !== undefined && workspaceFile.scheme !== 'untitled') {
      files.push({ uri: workspaceFile, inSettingsKey: true });
    }
    for (const { uri, inSettingsKey } of files) {
      let text: string;
      try {
        text = new TextDecoder().decode(await vscode.workspace.fs.readFile(uri));
      } catch {
        continue; // no such file
      }
      for (const key of machineSettingsIn(text, inSettingsKey)) {
        inFiles.add(key);
      }
    }
    const keys = [...new Set([...inspected, ...inFiles])];
    if (keys.length === 0) {
      return;
    }
    this.output.appendLine(
      `Ignored workspace settings (machine scope: only your own settings count): ${keys.join(', ')} ` +
        `(reported by VS Code: ${inspected.join(', ') || 'none'}; in the settings files: ${[...inFiles].join(', ') || 'none'})`,
    );
    const choice = await vscode.window.showWarningMessage(ignoredSettingsMessage(keys, vscode.env.remoteName), 'Open Settings');
    if (choice === 'Open Settings') {
      await openServerSettings(SETTINGS_QUERY);
    }
  }

  private async fetchStatus(client: LanguageClient): Promise<void> {
    try {
      this.setStatus(client, await status(client));
    } catch (error) {
      this.output.appendLine(`docs/status failed: ${errorMessage(error)}`);
    }
  }

  private setStatus(client: LanguageClient, value: StatusResult): void {
    if (client === this.client && this.phaseValue.kind === 'running') {
      const error = value.lastError ?? '';
      if (error !== '' && error !== this.lastErrorLogged) {
        this.output.appendLine(`Last error: ${error}`); // whole here; one sentence in the tooltip
      }
      this.lastErrorLogged = error;
      this.setPhase({ kind: 'running', status: value });
      this.statusEmitter.fire(value);
    }
  }

  /** Asks the server for its status now (the pushes keep it current otherwise). */
  async refreshStatus(): Promise<StatusResult | undefined> {
    const client = this.client;
    if (client === undefined || !client.isRunning()) {
      return undefined;
    }
    await this.fetchStatus(client);
    return this.phaseValue.kind === 'running' ? this.phaseValue.status : undefined;
  }

  async stop(): Promise<void> {
    const client = this.client;
    const child = this.process;
    this.client = undefined;
    if (client !== undefined) {
      await client.dispose().catch((error: unknown) => this.output.appendLine(`stop: ${errorMessage(error)}`));
    }
    // The client sent `exit` (the client does not own a process it did not spawn): one that
    // has not gone after a grace period is stopped.
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      const timer = setTimeout(() => child.kill(), EXIT_GRACE_MS);
      child.once('exit', () => clearTimeout(timer));
      child.stdin.end();
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
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.restart();
    }, RESTART_DEBOUNCE_MS);
  }

  onFoldersChanged(): void {
    // The client forwards folder changes itself; only the "no folder yet" case needs a start.
    if (this.client === undefined && (vscode.workspace.workspaceFolders ?? []).length > 0) {
      void this.start();
    }
  }

  notRunningMessage(): string {
    switch (this.phaseValue.kind) {
      case 'missing':
        return missingServerMessage(this.phaseValue.command);
      case 'noFolder':
        return 'Zero-Latency: open a folder to search its docs.';
      case 'stopped':
        return `Zero-Latency: the server is not running${this.phaseValue.reason !== undefined ? `: ${this.phaseValue.reason}` : ''}.`;
      default:
        return 'Zero-Latency: the server is not running.';
    }
  }

  async showMissingServer(command: string): Promise<void> {
    const choice = await vscode.window.showErrorMessage(missingServerMessage(command), 'Open Settings', 'Copy Install Command');
    if (choice === 'Open Settings') {
      await openServerSettings();
    } else if (choice === 'Copy Install Command') {
      await vscode.env.clipboard.writeText(INSTALL_COMMAND);
    }
  }

  async showError(message: string, withSettings: boolean): Promise<void> {
    const buttons = withSettings ? ['Show Log', 'Open Settings'] : ['Show Log'];
    const choice = await vscode.window.showErrorMessage(message, ...buttons);
    if (choice === 'Show Log') {
      this.output.show(true);
    } else if (choice === 'Open Settings') {
      await openServerSettings();
    }
  }

  private setPhase(phase: Phase): void {
    this.phaseValue = phase;
    this.phaseEmitter.fire(phase);
  }

  dispose(): void {
    if (this.restartTimer !== undefined) {
      clearTimeout(this.restartTimer);
    }
    this.phaseEmitter.dispose();
    this.statusEmitter.dispose();
    this.output.dispose();
  }
}

/** The settings UI where `zeroLatency.server.*` are listed: the Remote tab in a remote window
 * (they are machine scope), else the User tab. */
export function openServerSettings(query?: string): Thenable<unknown> {
  const { command, args } = serverSettingsCommand(vscode.env.remoteName, query);
  return vscode.commands.executeCommand(command, ...args);
}
