// Activation against a minimal stand-in for the VS Code API (VS Code itself cannot run here):
// commands get registered, and a missing server gives the status bar text and the error with
// its fix instead of a spawn failure.
import * as assert from 'node:assert/strict';
import Module = require('node:module');
import * as fs from 'node:fs';
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
  /** What inspect() reports as workspaceValue (VS Code drops machine settings from it). */
  workspaceSettings: Record<string, unknown>;
  warnings: string[];
  workspaceFile: ReturnType<typeof uri> | undefined;
  trustListeners: Array<() => void>;
}

const fake: Fake = {
  folders: undefined, settings: {}, commands: [], errors: [], statusText: '', answer: undefined, remoteName: undefined, executed: [],
  workspaceSettings: {}, warnings: [], workspaceFile: undefined, trustListeners: [],
};
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
    showWarningMessage: (message: string) => (fake.warnings.push(message), Promise.resolve(undefined)),
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
      inspect: (key: string) => ({ globalValue: fake.settings[key], workspaceValue: fake.workspaceSettings[key] }),
    }),
    get workspaceFile() {
      return fake.workspaceFile;
    },
    fs: { readFile: (file: { fsPath: string }) => fs.promises.readFile(file.fsPath) },
    onDidGrantWorkspaceTrust: (listener: () => void) => (fake.trustListeners.push(listener), disposable),
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
  assert.match(fake.errors[0]!.message, /pip install '\/path\/to\/your\/zero-latency-clone\[offline\]'/);
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

/** Waits until `condition` holds (the extension's file reads are asynchronous). */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i += 1) {
    await tick();
  }
  assert.ok(condition());
}

test('a relative server.path is refused, never resolved against the workspace folder', async () => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'zl-ws-'));
  fs.mkdirSync(path.join(folder, 'tools'));
  fs.writeFileSync(path.join(folder, 'tools', 'zl.sh'), '#!/bin/sh\n', { mode: 0o755 });
  fake.folders = [{ uri: uri(folder), name: 'ws' }];
  fake.settings = { 'server.path': './tools/zl.sh' };
  fake.errors = [];
  extension.activate(context());
  await until(() => fake.errors.length > 0);
  assert.equal(fake.statusText, '$(debug-disconnect) Zero-Latency: stopped');
  assert.equal(fake.errors.length, 1);
  assert.match(fake.errors[0]!.message, /"\.\/tools\/zl\.sh".*absolute/);
  await extension.deactivate();
  fs.rmSync(folder, { recursive: true, force: true });
});

test("a workspace's machine settings are ignored, with one warning per window naming them", async () => {
  const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'zl-ws-'));
  fs.mkdirSync(path.join(folder, '.vscode'));
  fs.writeFileSync(path.join(folder, '.vscode', 'settings.json'),
    '{\n  // from the repository\n  "zeroLatency.server.path": "./tools/zl.sh",\n  "zeroLatency.store.url": "http://127.0.0.1:9",\n}\n');
  const workspaceFile = path.join(folder, 'all.code-workspace');
  fs.writeFileSync(workspaceFile, '{ "folders": [{ "path": "." }], "settings": { "zeroLatency.device": "cuda" } }');
  fake.folders = [{ uri: uri(folder), name: 'ws' }];
  fake.workspaceFile = uri(workspaceFile);
  fake.settings = { 'server.path': path.join(os.tmpdir(), 'no-such-dir', 'zl') }; // the user's own
  fake.workspaceSettings = { 'store.apiKey': 'reported-by-inspect' };
  fake.errors = [];
  fake.warnings = [];
  fake.trustListeners = [];
  extension.activate(context());
  await until(() => fake.warnings.length > 0);
  assert.equal(fake.warnings.length, 1);
  const warning = fake.warnings[0]!;
  for (const key of ['zeroLatency.server.path', 'zeroLatency.store.url', 'zeroLatency.device', 'zeroLatency.store.apiKey']) {
    assert.ok(warning.includes(key), `${key} not named: ${warning}`);
  }
  assert.match(warning, /User settings/);
  // The user's server.path was the one looked for (and is missing), not the workspace's.
  assert.equal(fake.errors.length, 1);
  assert.ok(fake.errors[0]!.message.includes('no-such-dir'), fake.errors[0]!.message);
  // A restart (here: trust granted) does not warn again.
  assert.equal(fake.trustListeners.length, 1);
  fake.trustListeners[0]!();
  await until(() => fake.errors.length === 2);
  await tick();
  assert.equal(fake.warnings.length, 1);
  await extension.deactivate();
  fake.workspaceFile = undefined;
  fake.workspaceSettings = {};
  fs.rmSync(folder, { recursive: true, force: true });
});
