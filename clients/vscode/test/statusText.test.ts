import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { countsText, indexSummary, oneLine, resultsLine, statusBar, statusSummary } from '../src/statusText';
import type { StatusResult } from '../src/lspExt';

const base: StatusResult = {
  state: 'idle',
  files: 12,
  chunks: 1340,
  pendingFiles: 0,
  model: { id: 'bundled:all-MiniLM-L6-v2-int8', dimension: 384, device: 'cpu' },
  store: { kind: 'embedded', location: '/home/u/.local/share/zero-latency' },
};

test('idle: "Zero-Latency: N files · M chunks"', () => {
  assert.equal(statusBar({ kind: 'running', status: base }).text, '$(search) Zero-Latency: 12 files · 1,340 chunks');
  assert.equal(countsText({ files: 1, chunks: 1 }), '1 file · 1 chunk');
});

test('indexing: growing counts, no spinner (the server\'s $/progress is the one progress item)', () => {
  const view = statusBar({ kind: 'running', status: { ...base, state: 'indexing' } });
  assert.equal(view.text, '$(database) Zero-Latency: indexing · 12 files · 1,340 chunks');
  assert.doesNotMatch(view.text, /~spin/);
  // Before the first counts are known: no "0 files".
  assert.equal(statusBar({ kind: 'running', status: { ...base, state: 'indexing', files: 0, chunks: 0 } }).text, '$(database) Zero-Latency: indexing');
});

test('embedding: keyword search complete, the meaning share shown', () => {
  const status: StatusResult = { ...base, state: 'embedding', keywordChunks: 1340, embeddedChunks: 335 };
  assert.equal(statusBar({ kind: 'running', status }).text, '$(search) Zero-Latency: 12 files · 1,340 chunks · meaning 25%');
  assert.match(statusSummary(status), /ready for keyword search, meaning still arriving/);
});

test('states the contract adds show as their nearest known one', () => {
  const loading = { ...base, state: 'loading' } as unknown as StatusResult;
  assert.equal(statusBar({ kind: 'running', status: loading }).text, '$(database) Zero-Latency: loading model');
  const ready = { ...base, state: 'ready' } as unknown as StatusResult;
  assert.equal(statusBar({ kind: 'running', status: ready }).text, '$(search) Zero-Latency: 12 files · 1,340 chunks');
  assert.match(statusSummary(ready), /^Zero-Latency: ready · /);
});

test('server states', () => {
  assert.equal(statusBar({ kind: 'running', status: { ...base, state: 'loadingModel' } }).text, '$(database) Zero-Latency: loading model');
  assert.equal(statusBar({ kind: 'running', status: { ...base, state: 'indexing', pendingFiles: 3 } }).text, '$(database) Zero-Latency: indexing · 12 files · 1,340 chunks (3 files left)');
  const error = statusBar({ kind: 'running', status: { ...base, state: 'error', lastError: 'store locked' } });
  assert.match(error.text, /^\$\(warning\)/);
  assert.match(error.tooltip, /Last error: store locked/);
});

test('phases before the server runs', () => {
  assert.match(statusBar({ kind: 'starting' }).text, /starting/);
  assert.match(statusBar({ kind: 'missing', command: 'zl' }).text, /server not found/);
  assert.match(statusBar({ kind: 'stopped', reason: 'exited' }).tooltip, /exited/);
  assert.match(statusBar({ kind: 'noFolder' }).tooltip, /open a folder/);
});

test('summary lists model and store', () => {
  const text = statusSummary({ ...base, searchModes: ['keyword'], store: { kind: 'server', location: 'http://q:6333' } });
  assert.deepEqual(text.split('\n'), [
    'Zero-Latency: ready · 12 files · 1,340 chunks',
    'Model: bundled:all-MiniLM-L6-v2-int8 (384-d, cpu)',
    'Store: Qdrant server at http://q:6333',
    'Search modes: keyword',
  ]);
});

test('index summary', () => {
  const text = indexSummary({
    files: 10, indexedFiles: 2, unchangedFiles: 8, removedFiles: 1, skippedFiles: 0,
    chunks: 40, embeddedChunks: 6, elapsedMs: 1234, errors: [{ uri: 'file:///a', message: 'x' }],
  });
  assert.equal(text, 'Zero-Latency: indexed 2 files, 8 unchanged, 1 removed · 40 chunks (6 embedded) in 1.2 s · 1 error');
});

test('results line', () => {
  assert.equal(resultsLine(0, 0, 1, 'empty'), 'The index is empty: nothing indexed yet.');
  assert.equal(resultsLine(0, 0, 1, 'ready'), 'No results.');
  assert.equal(resultsLine(3, 2, 4.4, 'ready'), '3 results in 2 files · 4 ms');
  assert.match(resultsLine(1, 1, 4, 'indexing'), /^1 result in 1 file · 4 ms · still indexing/);
});

test('"Last error" in the tooltip is one short line, not an exception dump', () => {
  const dump = 'ResponseHandlingException: [Errno 111] Connection refused\n  File "x.py", line 3\n' + 'x'.repeat(500);
  const tooltip = statusSummary({ ...base, state: 'error', lastError: dump });
  assert.match(tooltip, /^Last error: ResponseHandlingException: \[Errno 111\] Connection refused$/m);
  assert.ok(!tooltip.includes('File "x.py"'), tooltip);
  assert.equal(oneLine('  \n' + 'y'.repeat(300)).length, 200);
});
