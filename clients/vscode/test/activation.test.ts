// Activation against a minimal stand-in for the VS Code API (VS Code itself cannot run here):
// commands get registered, and a missing server gives the status bar text and the error with
// its fix instead of a spawn failure.
import * as assert from 'node:assert/strict';
import Module = require('node:module');
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';

interface Fake {
  folders: Array<{ uri: { fsPath: string; toString(): string }; name: string }> | undefined;
  settings: Record<string, unknown>;
  commands: string[];
  errors: Array<{ message: string; buttons: string[] }>;
  statusText: string;
  /** The button the next error message is answered with. */
  answer: string | undefined;
  remoteName: string | undefined;
  executed: unknown[][];
}

const fake: Fake = { folders: undefined, settings: {}, commands: [], errors: [], statusText: '', answer: undefined, remoteName: undefined, executed: [] };
const disposable = { dispose: (): void => undefined };
const event = (): typeof disposable => disposable;
const uri = (fsPath: string) => ({ fsPath, path: fsPath, toString: () => pathToFileURL(fsPath).toString() });

class EventEmitter<T> {
  private listeners: Array<(value: T) => void> = [];
  event = (listener: (value: T) => void): typeof disposable => (this.listeners.push(listener), disposable);
  fire(value: T): void {
    this.listeners.forEach((listener) => listener(value));
  }
  dispose(): void {
    this.listeners = [];
  }
}

const vscodeStub = {
  EventEmitter,
  env: {
    get remoteName() {
      return fake.remoteName;
    },
    clipboard: { writeText: () => Promise.resolve() },
  },
  StatusBarAlignment: { Left: 1, Right: 2 },
  ProgressLocation: { Notification: 15, Window: 10 },
  Uri: { joinPath: (base: { fsPath: string }, ...parts: string[]) => uri(path.join(base.fsPath, ...parts)), file: uri },
  window: {
    createOutputChannel: () => ({ appendLine: () => undefined, show: () => undefined, dispose: () => undefined }),
    createStatusBarItem: () => {
      const item = { name: '', command: '', tooltip: '', show: () => undefined, dispose: () => undefined };
      return Object.defineProperty(item, 'text', { get: () => fake.statusText, set: (v: string) => (fake.statusText = v) });
    },
    registerWebviewViewProvider: () => disposable,
    createTreeView: () => ({ visible: false, description: undefined, onDidChangeVisibility: event, dispose: () => undefined }),
    onDidChangeTextEditorSelection: event,
    onDidChangeActiveTextEditor: event,
    showErrorMessage: (message: string, ...buttons: string[]) => {
      fake.errors.push({ message, buttons });
      return Promise.resolve(fake.answer);
    },
    showInformationMessage: () => Promise.resolve(undefined),
  },
  commands: {
    registerCommand: (name: string) => (fake.commands.push(name), disposable),
    executeCommand: (...args: unknown[]) => (fake.executed.push(args), Promise.resolve(undefined)),
  },
  workspace: {
    get workspaceFolders() {
      return fake.folders;
    },
    getConfiguration: () => ({
      get: (key: string) => fake.settings[key],
      inspect: (key: string) => (key in fake.settings ? { globalValue: fake.settings[key] } : {}),
    }),
    onDidChangeConfiguration: event,
    onDidChangeTextDocument: event,
    onDidChangeWorkspaceFolders: event,
  },
};

// vscode-languageclient subclasses VS Code's classes when it loads: anything not stubbed above
// is an empty class.
const vscodeModule = new Proxy(vscodeStub as Record<string | symbol, unknown>, {
  get: (target, key) => (key in target ? target[key] : class {}),
});

// Serve the stub for `require('vscode')` (vscode-languageclient loads it too).
const loader = Module as unknown as { _load: (request: string, ...rest: unknown[]) => unknown };
const originalLoad = loader._load;
loader._load = function (request: string, ...rest: unknown[]) {
  return request === 'vscode' ? vscodeModule : originalLoad.call(this, request, ...rest);
};
after(() => {
  loader._load = originalLoad;
});

const extension = require('../src/extension') as { activate(context: unknown): void; deactivate(): Promise<void> };
const context = () => ({ subscriptions: [] as unknown[], extensionUri: uri(path.join(__dirname, '..', '..')) });
const tick = () => new Promise((resolve) => setTimeout(resolve, 10));

test('no folder: commands registered, nothing started, no error', async () => {
  fake.folders = undefined;
  extension.activate(context());
  await tick();
  assert.deepEqual([...fake.commands].sort(), [
    'zeroLatency.openLocation', 'zeroLatency.quickSearch', 'zeroLatency.reindex', 'zeroLatency.restartServer', 'zeroLatency.searchDocs',
    'zeroLatency.showStatus',
  ]);
  assert.equal(fake.statusText, '$(search) Zero-Latency');
  assert.deepEqual(fake.errors, []);
  await extension.deactivate();
});

test('missing server: an error with the install command and a settings button', async () => {
  fake.folders = [{ uri: uri(os.tmpdir()), name: 'tmp' }];
  fake.settings = { 'server.path': path.join(os.tmpdir(), 'no-such-dir', 'zl') };
  fake.errors = [];
  extension.activate(context());
  await tick();
  assert.equal(fake.statusText, '$(error) Zero-Latency: server not found');
  assert.equal(fake.errors.length, 1);
  assert.match(fake.errors[0]!.message, /pip install 'zero-latency\[offline\]'/);
  assert.deepEqual(fake.errors[0]!.buttons, ['Open Settings', 'Copy Install Command']);
  await extension.deactivate();
});

test('missing server in a remote window: "Open Settings" opens the Remote tab, where the setting is', async () => {
  fake.folders = [{ uri: uri(os.tmpdir()), name: 'tmp' }];
  fake.settings = { 'server.path': path.join(os.tmpdir(), 'no-such-dir', 'zl') };
  fake.errors = [];
  fake.executed = [];
  fake.answer = 'Open Settings';
  fake.remoteName = 'ssh-remote';
  extension.activate(context());
  await tick();
  assert.equal(fake.errors.length, 1);
  assert.deepEqual(fake.executed, [['workbench.action.openRemoteSettings', { query: 'zeroLatency.server' }]]);
  await extension.deactivate();
  fake.answer = undefined;
  fake.remoteName = undefined;
});
