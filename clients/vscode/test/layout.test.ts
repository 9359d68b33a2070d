// Keeps the split honest: the plain modules (and so the unit tests) must run without VS Code,
// and every command the extension registers must be declared in package.json.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const root = path.join(__dirname, '..', '..');
const PLAIN = ['executable', 'messages', 'requests', 'results', 'settings', 'statusText'];

test('plain modules do not load vscode', () => {
  for (const name of PLAIN) {
    const js = fs.readFileSync(path.join(root, 'out', 'src', `${name}.js`), 'utf8');
    assert.doesNotMatch(js, /require\("vscode(-languageclient)?(\/[^"]*)?"\)/, `${name}.js loads vscode`);
  }
});

test('registered commands are declared, and declared commands are registered', () => {
  const js = fs.readFileSync(path.join(root, 'out', 'src', 'extension.js'), 'utf8');
  const registered = [...js.matchAll(/registerCommand\('([^']+)'/g)].map((m) => m[1]).sort();
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    contributes: { commands: Array<{ command: string }> };
  };
  const declared = manifest.contributes.commands.map((c) => c.command).sort();
  assert.deepEqual(registered, declared);
});
