import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildIndexParams, buildRelatedParams, buildSearchParams, ErrorCodes, errorCode, errorKind, errorMessage, index, isCancelled, rebuildFixes, related, search, status, type RequestSender } from '../src/requests';
import * as ext from '../src/lspExt';

test('search params: trimmed query, only the fields given', () => {
  assert.deepEqual(buildSearchParams('  rotate keys \n'), { query: 'rotate keys' });
  assert.deepEqual(buildSearchParams('q', { mode: 'keyword', limit: 20, include: ['docs/**', ' '], exclude: [] }), {
    query: 'q',
    mode: 'keyword',
    limit: 20,
    include: ['docs/**'],
  });
});

test('blank queries are not sent', () => {
  assert.equal(buildSearchParams(''), undefined);
  assert.equal(buildSearchParams(' \t\n'), undefined);
});

test('limits are kept inside the contract', () => {
  assert.equal(buildSearchParams('q', { limit: 1000 })!.limit, 100);
  assert.equal(buildSearchParams('q', { limit: 0 })!.limit, 1);
  assert.equal(buildSearchParams('q', { limit: 7.9 })!.limit, 7);
  assert.equal(buildSearchParams('q', { limit: Number.NaN })!.limit, undefined);
  assert.equal(buildSearchParams('x'.repeat(5000))!.query.length, 2000);
});

test('index params: plain reindex is an empty object', () => {
  assert.deepEqual(buildIndexParams(), {});
  assert.deepEqual(buildIndexParams({ force: false, uris: [] }), {});
  assert.deepEqual(buildIndexParams({ force: true, uris: ['file:///ws/a.md'], workDoneToken: 't' }), {
    uris: ['file:///ws/a.md'],
    force: true,
    workDoneToken: 't',
  });
});

test('senders use the typed request of each contract method', async () => {
  const calls: unknown[][] = [];
  const sender: RequestSender = {
    sendRequest<R>(...args: unknown[]): Promise<R> {
      calls.push(args);
      return Promise.resolve({} as R);
    },
  };
  await search(sender, { query: 'q' });
  await status(sender);
  const token = { isCancellationRequested: false, onCancellationRequested: () => ({ dispose: () => undefined }) };
  await index(sender, {}, token);
  await related(sender, buildRelatedParams('file:///ws/a.md', 3, 1));
  // No trailing `undefined`: vscode-jsonrpc would send it as a second positional parameter.
  assert.deepEqual(calls, [
    [ext.search, { query: 'q' }],
    [ext.status, {}],
    [ext.index, {}, token],
    [ext.related, { uri: 'file:///ws/a.md', position: { line: 3, character: 1 }, limit: 10 }],
  ]);
  assert.deepEqual(
    [ext.index, ext.search, ext.status, ext.related, ext.statusChanged].map((t) => t.method),
    ['docs/index', 'docs/search', 'docs/status', 'docs/related', 'zl/status'],
  );
});

test('related params are clamped to the contract', () => {
  assert.deepEqual(buildRelatedParams('file:///a.md', -1, 2.7, 500), { uri: 'file:///a.md', position: { line: 0, character: 2 }, limit: 100 });
  assert.equal(buildRelatedParams('file:///a.md', 0, 0, 0).limit, 1);
});

test('error helpers read JSON-RPC errors', () => {
  const cancelled = Object.assign(new Error('cancelled'), { code: -32800 });
  assert.equal(isCancelled(cancelled), true);
  assert.equal(errorCode({ code: -32602, message: 'bad' }), -32602);
  assert.equal(errorCode('boom'), undefined);
  assert.equal(errorMessage({ message: 'm' }), 'm');
  assert.equal(errorMessage(new Error('e')), 'e');
  assert.equal(errorMessage(42), '42');
});

test('application failures are RequestFailed with data.kind; -32002 is ServerNotInitialized only', () => {
  const failed = (kind: unknown) => Object.assign(new Error('the store is corrupt'), { code: -32803, data: { kind } });
  assert.equal(ErrorCodes.requestFailed, -32803);
  assert.equal(ErrorCodes.serverNotInitialized, -32002);
  assert.ok(!Object.values(ErrorCodes).includes(-32001 as never), 'v1 codes are gone');
  assert.equal(errorKind(failed('storeCorrupt')), 'storeCorrupt');
  assert.equal(errorKind({ code: -32803, message: 'm', data: { kind: 'modelUnavailable' } }), 'modelUnavailable');
  // A request sent before initialize is not a store failure (v1 could not tell them apart).
  assert.equal(errorKind({ code: -32002, message: 'not initialized', data: { kind: 'storeUnavailable' } }), undefined);
  assert.equal(errorKind({ code: -32803, message: 'a kind from a newer server', data: { kind: 'diskOnFire' } }), undefined);
  assert.equal(errorKind({ code: -32803, message: 'no data' }), undefined);
  assert.equal(errorKind({ code: -32803, message: 'm', data: null }), undefined);
  assert.equal(errorKind('boom'), undefined);
  assert.equal(rebuildFixes(failed('storeCorrupt')), true);
  assert.equal(rebuildFixes(failed('storeIncompatible')), true);
  assert.equal(rebuildFixes(failed('storeLocked')), false, 'a store another process holds is never rebuilt');
  assert.equal(rebuildFixes(failed('storeUnavailable')), false);
  assert.equal(rebuildFixes(failed('modelUnavailable')), false);
});
