import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { countsText, coverageLine, emptyState, indexSummary, oneLine, oneSentence, resultsLine, statusBar, statusSummary } from '../src/statusText';
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

test('indexing: no count and no spinner (the server\'s $/progress is the one progress item, with the one count)', () => {
  const view = statusBar({ kind: 'running', status: { ...base, state: 'indexing' } });
  assert.equal(view.text, '$(database) Zero-Latency: indexing');
  assert.match(view.tooltip, /12 files · 1,340 chunks/); // the counts stay in the tooltip
  assert.doesNotMatch(view.text, /~spin/);
  // Before the first counts are known: no "0 files".
  assert.equal(statusBar({ kind: 'running', status: { ...base, state: 'indexing', files: 0, chunks: 0 } }).text, '$(database) Zero-Latency: indexing');
});

test('embedding: keyword search complete, the meaning share shown', () => {
  const status: StatusResult = { ...base, state: 'embedding', keywordChunks: 1340, embeddedChunks: 335 };
  assert.equal(statusBar({ kind: 'running', status }).text, '$(search) Zero-Latency: keyword ready · meaning 25%');
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
  assert.equal(statusBar({ kind: 'running', status: { ...base, state: 'indexing', pendingFiles: 3 } }).text, '$(database) Zero-Latency: indexing');
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

test('summary says what runs the model where the server says it', () => {
  const text = statusSummary({ ...base, model: { ...base.model, runtime: 'openvino' } });
  assert.equal(text.split('\n')[1], 'Model: bundled:all-MiniLM-L6-v2-int8 (384-d, cpu, openvino)');
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
  assert.match(tooltip, /^Last error: ResponseHandlingException: \[Errno 111\] Connection refused \(details in the Zero-Latency output\)$/m);
  assert.ok(!tooltip.includes('File "x.py"'), tooltip);
  assert.equal(oneLine('  \n' + 'y'.repeat(300)).length, 200);
});

test('a raw exception is one sentence in the tooltip', () => {
  const raw = 'ResponseHandlingException: 5 validation errors for ParsingModel[InlineResponse200]\nresult.points.0 field required (type=value_error.missing)';
  assert.equal(oneSentence(raw), 'ResponseHandlingException: 5 validation errors for ParsingModel[InlineResponse200]');
  assert.equal(oneSentence('The store at /x is locked. Close the other process. Then retry.'), 'The store at /x is locked.');
  const tip = statusBar({ kind: 'running', status: { ...base, state: 'error', lastError: raw } }).tooltip;
  assert.match(tip, /Last error: ResponseHandlingException: 5 validation errors for ParsingModel\[InlineResponse200\] \(details in the Zero-Latency output\)$/);
});

test('coverage line: the result\'s own figures, none once complete', () => {
  assert.equal(coverageLine(undefined), undefined);
  assert.equal(coverageLine({ files: 7425, keywordChunks: 9053, embeddedChunks: 1039 }),
    'Meaning matched in 1,039 of 9,053 chunks (11%) so far; keyword matches cover all 7,425 files.');
});

test('empty states are distinct and come from the server\'s fields', () => {
  const kinds = [
    emptyState({ indexState: 'ready', belowFloor: 7 }),
    emptyState({ indexState: 'ready' }),
    emptyState({ indexState: 'empty' }, { ...base, state: 'indexing', files: 0, chunks: 0 }),
    emptyState({ indexState: 'empty' }, { ...base, files: 0, chunks: 0, refusedFolders: [{ uri: 'file:///home/u', reason: 'it is your home folder. Open a project folder.' }] }),
    emptyState({ indexState: 'empty' }, { ...base, state: 'error', lastError: 'Qdrant at http://q:6333 is unreachable: connection refused. Retry later.' }),
  ];
  assert.equal(kinds[0]!.text, 'No good match: 7 weaker passages left out.');
  assert.equal(kinds[0]!.kind, 'noGoodMatch');
  assert.equal(kinds[1]!.kind, 'noMatch');
  assert.match(kinds[2]!.text, /^Nothing indexed yet: the first index is running/);
  assert.equal(kinds[3]!.text, 'Index refused: it is your home folder.');
  assert.equal(kinds[4]!.text, 'Store unavailable: Qdrant at http://q:6333 is unreachable: connection refused.');
  assert.equal(new Set(kinds.map((k) => k.kind)).size, 5);
  assert.match(emptyState({ indexState: 'indexing', coverage: { files: 3, keywordChunks: 10, embeddedChunks: 0 } }).text, /updates as the index grows/);
  assert.equal(emptyState({ indexState: 'ready', mode: 'keyword' }).text, 'No passage contains these words.');
});
