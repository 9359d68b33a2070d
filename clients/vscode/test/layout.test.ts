// Keeps the split honest: the plain modules (and so the unit tests) must run without VS Code,
// and every command the extension registers must be declared in package.json.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';

const root = path.join(__dirname, '..', '..');
const PLAIN = ['executable', 'lspExt', 'messages', 'requests', 'results', 'serverLog', 'settings', 'statusText'];

test('plain modules do not load vscode', () => {
  for (const name of PLAIN) {
    const js = fs.readFileSync(path.join(root, 'out', 'src', `${name}.js`), 'utf8');
    assert.doesNotMatch(js, /require\("vscode(-languageclient)?(\/[^"]*)?"\)/, `${name}.js loads vscode`);
  }
});

test('registered commands are declared, and declared commands are registered', () => {
  const dir = path.join(root, 'out', 'src');
  const js = fs.readdirSync(dir).filter((f) => f.endsWith('.js')).map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).join('\n');
  const registered = [...js.matchAll(/registerCommand\('([^']+)'/g)].map((m) => m[1]).sort();
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    contributes: { commands: Array<{ command: string }> };
  };
  const declared = manifest.contributes.commands.map((c) => c.command).sort();
  assert.deepEqual(registered, declared);
});

test('the wire types are generated from protocol/schema.json, not copied by hand', () => {
  const generated = fs.readFileSync(path.join(root, 'src', 'generated', 'protocol.d.ts'), 'utf8');
  assert.match(generated, /^\/\/ Generated from protocol\/schema\.json/);
  for (const name of ['Hit', 'SearchResult', 'StatusResult', 'IndexResult']) {
    assert.match(generated, new RegExp(`export interface ${name} `));
  }
  const viewTypes = fs.readFileSync(path.join(root, 'src', 'types.d.ts'), 'utf8');
  assert.doesNotMatch(viewTypes, /interface (Hit|SearchResult|StatusResult|IndexResult|SearchParams)\b/);
  const manifest = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.match(manifest.scripts.build!, /^npm run generate && /);
});
