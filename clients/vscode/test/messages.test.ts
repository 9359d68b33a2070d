import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseFromView, parseRange } from '../src/messages';

const range = { start: { line: 3, character: 0 }, end: { line: 9, character: 4 } };

test('valid messages pass, typed', () => {
  assert.deepEqual(parseFromView({ type: 'ready' }), { type: 'ready' });
  assert.deepEqual(parseFromView({ type: 'search', seq: 4, query: 'keys', mode: 'semantic' }), {
    type: 'search',
    seq: 4,
    query: 'keys',
    mode: 'semantic',
  });
  assert.deepEqual(parseFromView({ type: 'open', uri: 'file:///ws/a.md', range, extra: 1 }), {
    type: 'open',
    uri: 'file:///ws/a.md',
    range,
  });
});

test('malformed messages are rejected', () => {
  const bad: unknown[] = [
    null,
    'search',
    [],
    { type: 'nope' },
    { type: 'search', seq: '1', query: 'q', mode: 'hybrid' },
    { type: 'search', seq: 1.5, query: 'q', mode: 'hybrid' },
    { type: 'search', seq: 1, query: 3, mode: 'hybrid' },
    { type: 'search', seq: 1, query: 'q', mode: 'fuzzy' },
    { type: 'open', uri: 'https://example.com/', range },
    { type: 'open', uri: 'command:workbench.action.quit', range },
    { type: 'open', uri: 'file:///a.md' },
    { type: 'open', uri: 'file:///a.md', range: { start: { line: -1, character: 0 }, end: { line: 1, character: 0 } } },
    { type: 'open', uri: 'file:///a.md', range: { start: { line: 5, character: 0 }, end: { line: 1, character: 0 } } },
  ];
  for (const message of bad) {
    assert.equal(parseFromView(message), undefined, JSON.stringify(message));
  }
});

test('ranges: copies only line and character', () => {
  const parsed = parseRange({ start: { line: 1, character: 2, x: 1 }, end: { line: 1, character: 2 } });
  assert.deepEqual(parsed, { start: { line: 1, character: 2 }, end: { line: 1, character: 2 } });
  assert.equal(parseRange({ start: { line: 1.5, character: 0 }, end: { line: 2, character: 0 } }), undefined);
});

test('huge queries are cut, not rejected', () => {
  const parsed = parseFromView({ type: 'search', seq: 1, query: 'x'.repeat(100000), mode: 'hybrid' });
  assert.ok(parsed !== undefined && parsed.type === 'search' && parsed.query.length <= 4000);
});
