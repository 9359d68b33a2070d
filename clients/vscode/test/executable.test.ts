import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { findExecutable } from '../src/executable';

test('finds a bare name on PATH, in PATH order', () => {
  const exists = new Set(['/b/zl', '/c/zl']);
  const found = findExecutable('zl', { PATH: '/a:/b:/c', platform: 'linux', isExecutable: (f) => exists.has(f) });
  assert.equal(found, '/b/zl');
});

test('missing executable gives undefined', () => {
  assert.equal(findExecutable('zl', { PATH: '/a:/b', platform: 'linux', isExecutable: () => false }), undefined);
  assert.equal(findExecutable('zl', { platform: 'linux', isExecutable: () => true }), undefined);
});

test('paths with a separator are resolved against cwd, not PATH', () => {
  const seen: string[] = [];
  findExecutable('.venv/bin/zl', { PATH: '/a', platform: 'linux', cwd: '/ws', isExecutable: (f) => (seen.push(f), false) });
  assert.deepEqual(seen, ['/ws/.venv/bin/zl']);
});

test('Windows: PATHEXT is tried', () => {
  const found = findExecutable('zl', {
    PATH: 'C:\\py\\Scripts',
    PATHEXT: '.COM;.EXE',
    platform: 'win32',
    isExecutable: (f) => f === 'C:\\py\\Scripts\\zl.EXE',
  });
  assert.equal(found, 'C:\\py\\Scripts\\zl.EXE');
});

test('real file system: executable bit matters', { skip: process.platform === 'win32' }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'zl-exe-'));
  try {
    const file = path.join(dir, 'zl');
    fs.writeFileSync(file, '#!/bin/sh\n');
    assert.equal(findExecutable('zl', { PATH: dir, platform: process.platform }), undefined);
    fs.chmodSync(file, 0o755);
    assert.equal(findExecutable('zl', { PATH: dir, platform: process.platform }), file);
    assert.equal(findExecutable(file, { platform: process.platform }), file);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
