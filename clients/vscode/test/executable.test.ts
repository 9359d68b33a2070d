import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { findExecutable, isRelativePath } from '../src/executable';

test('finds a bare name on PATH, in PATH order', () => {
  const exists = new Set(['/b/zl', '/c/zl']);
  const found = findExecutable('zl', { PATH: '/a:/b:/c', platform: 'linux', isExecutable: (f) => exists.has(f) });
  assert.equal(found, '/b/zl');
});

test('missing executable gives undefined', () => {
  assert.equal(findExecutable('zl', { PATH: '/a:/b', platform: 'linux', isExecutable: () => false }), undefined);
  assert.equal(findExecutable('zl', { platform: 'linux', isExecutable: () => true }), undefined);
});

test('a relative path is never resolved (not against a workspace folder, not against PATH)', () => {
  for (const relative of ['.venv/bin/zl', './tools/zl.sh', 'tools/zl.sh', '../zl']) {
    const seen: string[] = [];
    assert.equal(isRelativePath(relative, 'linux'), true, relative);
    assert.equal(findExecutable(relative, { PATH: '/a', platform: 'linux', isExecutable: (f) => (seen.push(f), true) }), undefined);
    assert.deepEqual(seen, [], relative); // nothing was even looked at
  }
  assert.equal(isRelativePath('tools\\zl.cmd', 'win32'), true);
  assert.equal(isRelativePath('C:zl.exe', 'win32'), false); // no separator: a name
});

test('absolute paths, ~/ paths and bare names are not relative', () => {
  for (const command of ['/venv/bin/zl', '~/venv/bin/zl', 'zl', 'python3']) {
    assert.equal(isRelativePath(command, 'linux'), false, command);
  }
  for (const command of ['C:\\py\\zl.exe', 'C:/py/zl.exe', '\\\\server\\share\\zl.exe', '~\\zl.exe']) {
    assert.equal(isRelativePath(command, 'win32'), false, command);
  }
  const seen: string[] = [];
  findExecutable('/venv/bin/zl', { platform: 'linux', isExecutable: (f) => (seen.push(f), false) });
  assert.deepEqual(seen, ['/venv/bin/zl']);
});

test('relative PATH entries are skipped', () => {
  const seen: string[] = [];
  findExecutable('zl', { PATH: '.:bin:/usr/bin:', platform: 'linux', isExecutable: (f) => (seen.push(f), false) });
  assert.deepEqual(seen, ['/usr/bin/zl']);
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
