import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  affectsServer,
  buildInitializationOptions,
  ignoredSettingsMessage,
  INIT_OPTION_SETTINGS,
  MACHINE_SETTINGS,
  machineSettingsIn,
  machineSettingsInspected,
  missingServerMessage,
  relativeServerPathMessage,
  serverCommand,
  serverSettingsCommand,
  userValue,
  workspaceLevelValue,
  type InspectedValue,
} from '../src/settings';

function inspector(values: Record<string, InspectedValue>): (key: string) => InspectedValue | undefined {
  return (key) => values[key];
}

test("the user's values go top-level, the workspace's in workspaceSettings, under the server camelCase names", () => {
  const options = buildInitializationOptions(
    inspector({
      'store.path': { globalValue: '/tmp/store' },
      chunkTokens: { workspaceValue: 128 },
      respectGitignore: { globalValue: true, workspaceValue: false },
      include: { workspaceFolderValue: ['docs/**'], workspaceValue: ['x/**'] },
      model: { globalValue: '', workspaceValue: 'org/model' }, // the settings UI leaves empty strings: not set
      device: {}, // only a default
    }),
  );
  assert.deepEqual(options, {
    storePath: '/tmp/store',
    respectGitignore: true,
    workspaceSettings: { chunkTokens: 128, respectGitignore: false, include: ['docs/**'], model: 'org/model' },
  });
});

test('a workspace never sets a machine setting, even where inspect() reports one', () => {
  const options = buildInitializationOptions(
    inspector({
      'store.url': { workspaceValue: 'http://127.0.0.1:9' },
      'store.apiKey': { workspaceFolderValue: 'key' },
      'store.path': { globalValue: '/mine', workspaceValue: '/theirs' },
      device: { workspaceValue: 'cuda' },
    }),
  );
  assert.deepEqual(options, { storePath: '/mine' });
});

test('machine settings are exactly the what-runs / where-text-goes ones, declared machine scope', () => {
  assert.deepEqual([...MACHINE_SETTINGS].sort(), ['device', 'server.args', 'server.path', 'store.apiKey', 'store.path', 'store.url']);
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { scope?: string }> } };
    capabilities: { untrustedWorkspaces: { supported: string; restrictedConfigurations: string[] } };
  };
  const properties = manifest.contributes.configuration.properties;
  for (const [key, schema] of Object.entries(properties)) {
    const machine = MACHINE_SETTINGS.includes(key.replace(/^zeroLatency\./, ''));
    assert.equal(schema.scope === 'machine', machine, `${key}: scope ${schema.scope ?? 'window'}`);
    assert.notEqual(schema.scope, 'machine-overridable', key); // a workspace could override it
  }
  const { supported, restrictedConfigurations } = manifest.capabilities.untrustedWorkspaces;
  assert.equal(supported, 'limited');
  assert.ok(restrictedConfigurations.includes('zeroLatency.model'));
  for (const key of restrictedConfigurations) {
    assert.ok(key in properties, key);
  }
});

test('machine settings a settings file sets: dotted or nested keys, comments, trailing commas', () => {
  const folderSettings = `{
    // a repository's .vscode/settings.json
    "zeroLatency.server.path": "./tools/zl.sh",
    "zeroLatency.store.url": "http://127.0.0.1:9", /* where text would go */
    "zeroLatency.model": "org/model",
    "zeroLatency": { "device": "cuda", "store": { "apiKey": "k" } },
    "[markdown]": { "zeroLatency.store.path": "/x" },
  }`;
  assert.deepEqual(machineSettingsIn(folderSettings, false), [
    'zeroLatency.server.path', 'zeroLatency.store.url', 'zeroLatency.store.apiKey', 'zeroLatency.device',
  ]);
  const workspaceFile = '{ "folders": [{ "path": "." }], "settings": { "zeroLatency.server.args": ["x"], "zeroLatency.include": [] } }';
  assert.deepEqual(machineSettingsIn(workspaceFile, true), ['zeroLatency.server.args']);
  assert.deepEqual(machineSettingsIn(workspaceFile, false), []); // folder settings have no "settings" key
  assert.deepEqual(machineSettingsIn('not json at all {', false), []);
  assert.deepEqual(machineSettingsIn('{ "zeroLatency.store.url": null }', false), []);
  assert.deepEqual(
    machineSettingsInspected(inspector({ 'server.path': { workspaceValue: './x' }, 'store.url': { globalValue: 'http://q' } })),
    ['zeroLatency.server.path'],
  );
});

test('the ignored-settings warning names them and says where to set them', () => {
  const local = ignoredSettingsMessage(['zeroLatency.server.path', 'zeroLatency.store.url'], undefined);
  assert.match(local, /zeroLatency\.server\.path, zeroLatency\.store\.url/);
  assert.match(local, /ignored/);
  assert.match(local, /User settings/);
  const remote = ignoredSettingsMessage(['zeroLatency.store.url'], 'ssh-remote');
  assert.match(remote, /Remote settings/);
});

test('a relative server path is refused with a message saying what works', () => {
  const message = relativeServerPathMessage('./tools/zl.sh');
  assert.match(message, /\.\/tools\/zl\.sh/);
  assert.match(message, /absolute/);
  assert.match(message, /~\//);
  assert.match(message, /PATH/);
});

test('nothing set sends an empty object', () => {
  assert.deepEqual(buildInitializationOptions(() => undefined), {});
});

test('every documented server key is mapped', () => {
  const options = INIT_OPTION_SETTINGS.map((s) => s.option).sort();
  assert.deepEqual(options, [
    'chunkOverlap', 'chunkTokens', 'debounceMs', 'device', 'exclude', 'followSymlinks', 'include',
    'maxFileBytes', 'model', 'respectGitignore', 'storeApiKey', 'storePath', 'storeUrl',
  ]);
});

test('wrong types are passed through for the server to name the key', () => {
  assert.deepEqual(buildInitializationOptions(inspector({ chunkTokens: { globalValue: 'big' } })), { chunkTokens: 'big' });
});

test("userValue is only the user's own value; workspaceLevelValue the folder's, else the workspace's", () => {
  assert.equal(userValue({ globalValue: 1, workspaceValue: 2, workspaceFolderValue: 3 }), 1);
  assert.equal(userValue({ workspaceValue: 2, workspaceFolderValue: 3 }), undefined);
  assert.equal(userValue({ globalValue: null }), undefined);
  assert.equal(userValue(undefined), undefined);
  assert.equal(workspaceLevelValue({ globalValue: 1, workspaceValue: 2, workspaceFolderValue: 3 }), 3);
  assert.equal(workspaceLevelValue({ globalValue: 1, workspaceValue: 2, workspaceFolderValue: null }), 2);
  assert.equal(workspaceLevelValue({ globalValue: 1 }), undefined);
});

test('every mapped setting is declared in package.json, and the other way round', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, unknown> } };
  };
  const declared = Object.keys(manifest.contributes.configuration.properties);
  for (const { setting } of INIT_OPTION_SETTINGS) {
    assert.ok(declared.includes(`zeroLatency.${setting}`), `zeroLatency.${setting} is not in package.json`);
  }
  const clientOnly = ['server.path', 'server.args', 'search.defaultMode', 'search.limit', 'search.include', 'search.exclude', 'search.groupByFile', 'trace.server'];
  const mapped = new Set(INIT_OPTION_SETTINGS.map((s) => `zeroLatency.${s.setting}`));
  for (const key of declared) {
    assert.ok(mapped.has(key) || clientOnly.includes(key.replace(/^zeroLatency\./, '')), `${key} is neither sent nor used by the client`);
  }
});

test('settings are listed by importance: the model and the server first, chunking last', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, { order?: number }> } };
  };
  const entries = Object.entries(manifest.contributes.configuration.properties);
  assert.ok(entries.every(([, schema]) => typeof schema.order === 'number'), 'every setting has an order');
  const byOrder = entries.sort((a, b) => a[1].order! - b[1].order!).map(([key]) => key);
  assert.deepEqual(byOrder.slice(0, 3), ['zeroLatency.model', 'zeroLatency.server.path', 'zeroLatency.server.args']);
  assert.ok(byOrder.indexOf('zeroLatency.chunkOverlap') > byOrder.indexOf('zeroLatency.search.limit'));
});

test('server command: defaults, custom path and args', () => {
  assert.deepEqual(serverCommand(undefined, undefined), { command: 'zl', args: ['serve'] });
  assert.deepEqual(serverCommand('  ', null), { command: 'zl', args: ['serve'] });
  assert.deepEqual(serverCommand('/venv/bin/zl', ['-v', 'serve']), { command: '/venv/bin/zl', args: ['-v', 'serve'] });
  assert.deepEqual(serverCommand('python3', ['-m', 'zero_latency', 'serve']), { command: 'python3', args: ['-m', 'zero_latency', 'serve'] });
  assert.deepEqual(serverCommand('zl', [1, 2]), { command: 'zl', args: ['serve'] });
});

test('the missing-server message says how to fix it', () => {
  const message = missingServerMessage('zl');
  assert.match(message, /pip install '\/path\/to\/your\/zero-latency-clone\[offline\]'/);
  assert.match(message, /zeroLatency\.server\.path/);
});

test('server-affecting settings restart it, search settings do not', () => {
  const changed = (keys: string[]) => (section: string) => keys.some((k) => k === section || k.startsWith(`${section}.`));
  assert.equal(affectsServer(changed(['zeroLatency.server.path'])), true);
  assert.equal(affectsServer(changed(['zeroLatency.store.url'])), true);
  assert.equal(affectsServer(changed(['zeroLatency.chunkTokens'])), true);
  assert.equal(affectsServer(changed(['zeroLatency.search.limit'])), false);
  assert.equal(affectsServer(changed(['zeroLatency.trace.server'])), false);
});

test('"Open Settings" lands where zeroLatency.server.* are listed: the Remote tab in a remote window', () => {
  // machine settings are not on the User tab of a remote window (code-server, SSH, WSL, containers)
  for (const remote of ['ssh-remote', 'wsl', 'dev-container', '127.0.0.1:8080']) {
    assert.deepEqual(serverSettingsCommand(remote), { command: 'workbench.action.openRemoteSettings', args: [{ query: 'zeroLatency.server' }] });
  }
  for (const local of [undefined, '']) {
    assert.deepEqual(serverSettingsCommand(local), { command: 'workbench.action.openSettings', args: [{ query: 'zeroLatency.server' }] });
  }
});
