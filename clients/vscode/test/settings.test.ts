import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import {
  affectsServer,
  buildInitializationOptions,
  INIT_OPTION_SETTINGS,
  missingServerMessage,
  serverCommand,
  serverSettingsCommand,
  userValue,
  type InspectedValue,
} from '../src/settings';

function inspector(values: Record<string, InspectedValue>): (key: string) => InspectedValue | undefined {
  return (key) => values[key];
}

test('only keys the user set are sent, under the server camelCase names', () => {
  const options = buildInitializationOptions(
    inspector({
      'store.path': { globalValue: '/tmp/store' },
      chunkTokens: { workspaceValue: 128 },
      respectGitignore: { globalValue: true, workspaceValue: false },
      include: { workspaceFolderValue: ['docs/**'], workspaceValue: ['x/**'] },
      model: { globalValue: '' }, // the settings UI leaves empty strings: not set
      device: {}, // only a default
    }),
  );
  assert.deepEqual(options, {
    storePath: '/tmp/store',
    chunkTokens: 128,
    respectGitignore: false,
    include: ['docs/**'],
  });
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

test('userValue prefers the most specific scope and ignores null', () => {
  assert.equal(userValue({ globalValue: 1, workspaceValue: 2, workspaceFolderValue: 3 }), 3);
  assert.equal(userValue({ globalValue: 1, workspaceValue: null }), 1);
  assert.equal(userValue(undefined), undefined);
});

test('every mapped setting is declared in package.json, and the other way round', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as {
    contributes: { configuration: { properties: Record<string, unknown> } };
  };
  const declared = Object.keys(manifest.contributes.configuration.properties);
  for (const { setting } of INIT_OPTION_SETTINGS) {
    assert.ok(declared.includes(`zeroLatency.${setting}`), `zeroLatency.${setting} is not in package.json`);
  }
  const clientOnly = ['server.path', 'server.args', 'search.defaultMode', 'search.limit', 'search.include', 'search.exclude', 'trace.server'];
  const mapped = new Set(INIT_OPTION_SETTINGS.map((s) => `zeroLatency.${s.setting}`));
  for (const key of declared) {
    assert.ok(mapped.has(key) || clientOnly.includes(key.replace(/^zeroLatency\./, '')), `${key} is neither sent nor used by the client`);
  }
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
  assert.match(message, /pip install 'zero-latency\[offline\]'/);
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
  // machine-overridable settings are not on the User tab of a remote window (code-server, SSH, WSL, containers)
  for (const remote of ['ssh-remote', 'wsl', 'dev-container', '127.0.0.1:8080']) {
    assert.deepEqual(serverSettingsCommand(remote), { command: 'workbench.action.openRemoteSettings', args: [{ query: 'zeroLatency.server' }] });
  }
  for (const local of [undefined, '']) {
    assert.deepEqual(serverSettingsCommand(local), { command: 'workbench.action.openSettings', args: [{ query: 'zeroLatency.server' }] });
  }
});
