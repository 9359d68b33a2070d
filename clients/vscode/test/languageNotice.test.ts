import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { statusSummary } from '../src/statusText';
import type { StatusResult } from '../src/lspExt';

const status: StatusResult = {
  state: 'idle',
  files: 8,
  chunks: 8,
  pendingFiles: 0,
  model: { id: 'sentence-transformers/all-MiniLM-L6-v2@int8', dimension: 384, device: 'cpu', languages: ['en'] },
  store: { kind: 'embedded', location: '/home/u/.local/share/zero-latency' },
  languages: { zh: 6, en: 2 },
  uncoveredLanguages: ['zh'],
  languageNotice: '75% of the chunks are in Chinese, which the model does not cover.',
};

test('the tooltip carries the server\'s sentence about languages the model leaves out', () => {
  assert.match(statusSummary(status), /\nLanguages: 75% of the chunks are in Chinese, which the model does not cover\.(\n|$)/);
  const { languageNotice: _, uncoveredLanguages: __, ...covered } = status;
  assert.doesNotMatch(statusSummary(covered), /Languages:/);
});
