import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMirroredLogLine } from '../src/serverLog';

test('server log records that also arrive as window/logMessage are left out of stderr', () => {
  assert.ok(isMirroredLogLine('2026-11-25 13:24:57,123 INFO zero_latency: indexed 5 files'));
  assert.ok(isMirroredLogLine('2026-11-25 13:24:57,123 WARNING zero_latency.daemon: store locked'));
  assert.ok(isMirroredLogLine('2026-11-25 13:24:57,123 ERROR zero_latency: background work failed: x'));
});

test('everything else on stderr is kept', () => {
  for (const line of [
    '2026-11-25 13:24:57,123 DEBUG zero_latency: sent 3 hits', // -v: stderr only
    '2026-11-25 13:24:57,123 WARNING pygls.protocol: dropped', // not mirrored
    'Traceback (most recent call last):',
    'zl serve: cannot reach the Zero-Latency daemon: refused',
    'INFO zero_latency: no timestamp',
  ]) {
    assert.equal(isMirroredLogLine(line), false, line);
  }
});
