// End-to-end: the real `zl serve` over stdio, driven by vscode-jsonrpc (the library under
// vscode-languageclient) with the extension's own request builders. Needs the server installed:
// $ZL_SERVER, else <repo>/.venv/bin/zl, else `zl` on PATH. Run with `npm run test:e2e`.
import * as assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it as nodeIt, type TestContext } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  CancellationTokenSource,
  createMessageConnection,
  ProgressType,
  StreamMessageReader,
  StreamMessageWriter,
  type MessageConnection,
} from 'vscode-jsonrpc/node';
import { findExecutable } from '../../src/executable';
import { buildIndexParams, buildSearchParams, errorCode, ErrorCodes, index, search, status } from '../../src/requests';
import { groupByFile, targetRange } from '../../src/results';
import { buildInitializationOptions, DEFAULT_SERVER_ARGS, type InspectedValue } from '../../src/settings';
import { statusBar } from '../../src/statusText';
import { statusChanged, type IndexResult, type SearchResult, type StatusResult } from '../../src/lspExt';

const CLIENT_ROOT = path.resolve(__dirname, '..', '..', '..');
const TIMEOUT_MS = 300_000;

type ProgressValue = { kind: 'begin' | 'report' | 'end'; title?: string; message?: string; percentage?: number };
const workDoneProgress = new ProgressType<ProgressValue>();

function serverExecutable(): string {
  const fromEnv = process.env.ZL_SERVER;
  if (fromEnv !== undefined && fromEnv !== '') {
    return fromEnv;
  }
  const venv = path.resolve(CLIENT_ROOT, '..', '..', '.venv', process.platform === 'win32' ? 'Scripts' : 'bin', 'zl');
  const found =
    findExecutable(venv, { platform: process.platform, PATHEXT: process.env.PATHEXT }) ??
    findExecutable('zl', { PATH: process.env.PATH, PATHEXT: process.env.PATHEXT, platform: process.platform });
  if (found === undefined) {
    throw new Error(`no server: set ZL_SERVER, or install it in ${path.dirname(venv)} (pip install -e '.[offline]') or on PATH`);
  }
  return found;
}

// --- the test workspace ----------------------------------------------------------------------

const KEYS_MD = [
  '# Operations', //                                                       0
  '', //                                                                   1
  'Day-to-day running of the service.', //                                 2
  '', //                                                                   3
  '## Key rotation', //                                                    4
  '', //                                                                   5
  'To rotate the signing keys, generate a new key pair with the keytool,', // 6
  'publish the public half, and retire the old key after the grace period', // 7
  'of seven days. Rotation of signing keys must happen every ninety days.', // 8
  '', //                                                                   9
  '## Backups', //                                                        10
  '', //                                                                  11
  'Nightly snapshots of the database are copied to cold storage.', //      12
  '',
].join('\n');
const KEY_ROTATION_LINE = 6;

const OTHER_DOCS: Record<string, string> = {
  'README.md': '# Demo project\n\nA small project used to test Zero-Latency search.\n',
  'docs/install.md':
    '# Installation\n\nInstall the package with pip, then run the setup wizard.\n\n' +
    '## Troubleshooting\n\nIf the wizard fails, remove the cache folder and try again.\n',
  'docs/faq.md':
    '# FAQ\n\n## Why is the sky blue?\n\nRayleigh scattering of sunlight by the atmosphere.\n\n' +
    '## Who maintains the zanzibar gateway?\n\nThe platform team owns the zanzibar gateway.\n',
};
const ZANZIBAR_FILE = 'docs/faq.md';
const ZANZIBAR_LINE = 6; // "## Who maintains the zanzibar gateway?"

/** 300 varied paragraphs: enough embedding work that a cancel lands before the end. */
function bigDoc(paragraphs: number): string {
  const words = ['cluster', 'latency', 'replica', 'schema', 'ledger', 'throttle', 'cache', 'shard', 'quorum',
    'payload', 'rollback', 'migration', 'tenant', 'audit', 'gateway', 'pipeline', 'metric', 'alert', 'token',
    'session', 'archive', 'budget', 'vendor', 'invoice', 'kernel', 'driver', 'sensor', 'harvest', 'river', 'meadow'];
  let seed = 7;
  const next = (): number => (seed = (seed * 1103515245 + 12345) % 2147483648);
  const out = ['# Generated handbook', ''];
  for (let p = 0; p < paragraphs; p++) {
    if (p % 20 === 0) {
      out.push(`## Chapter ${p / 20 + 1}`, '');
    }
    const sentence = Array.from({ length: 45 }, () => words[next() % words.length]).join(' ');
    out.push(`Paragraph ${p}: the ${sentence}.`, '');
  }
  return out.join('\n');
}

function makeWorkspace(root: string): void {
  const files: Record<string, string> = { 'docs/keys.md': KEYS_MD, 'docs/big.md': bigDoc(300), ...OTHER_DOCS };
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
}

async function waitFor<T>(probe: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined || Date.now() > deadline) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function hitPath(uri: string): string {
  return fs.realpathSync(fileURLToPath(uri));
}

// --- the test ---------------------------------------------------------------------------------

let failed = false;
/** `it`, remembering failures so that `after` prints the server's logs only when useful. */
function it(name: string, fn: (t: TestContext) => Promise<void>): void {
  nodeIt(name, async (t) => {
    try {
      await fn(t);
    } catch (error) {
      failed = true;
      throw error;
    }
  });
}

describe('zl serve over vscode-jsonrpc', { timeout: TIMEOUT_MS }, () => {
  let tmp = '';
  let workspace = '';
  let server: ChildProcessWithoutNullStreams | undefined;
  let connection: MessageConnection | undefined;
  let stderr = '';
  const logs: string[] = [];
  const pushedStatus: StatusResult[] = []; // zl/status notifications, in order
  const progress = new Map<string | number, ProgressValue[]>();
  const protocolErrors: string[] = [];

  const conn = (): MessageConnection => {
    assert.ok(connection !== undefined, 'not connected');
    return connection;
  };

  before(() => {
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'zl-vscode-e2e-')));
    workspace = path.join(tmp, 'workspace');
    makeWorkspace(workspace);
    const executable = serverExecutable();
    server = spawn(executable, [...DEFAULT_SERVER_ARGS], {
      cwd: workspace,
      env: {
        ...process.env,
        // Hermetic: no user config file, no model download (the offline bundle is used).
        ZL_CONFIG: path.join(tmp, 'no-config.toml'),
        HF_HUB_OFFLINE: process.env.HF_HUB_OFFLINE ?? '1',
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    server.stderr.setEncoding('utf8');
    server.stderr.on('data', (chunk: string) => (stderr += chunk));
    const c = createMessageConnection(new StreamMessageReader(server.stdout), new StreamMessageWriter(server.stdin));
    // What VS Code answers to the server's own requests.
    c.onRequest('window/workDoneProgress/create', () => null);
    c.onRequest('client/registerCapability', () => null);
    c.onRequest('client/unregisterCapability', () => null);
    c.onRequest('workspace/configuration', (params: { items: unknown[] }) => params.items.map(() => null));
    c.onNotification('window/logMessage', (p: { message: string }) => logs.push(p.message));
    c.onNotification(statusChanged, (pushed) => pushedStatus.push(pushed));
    c.onNotification('window/showMessage', (p: { message: string }) => logs.push(`showMessage: ${p.message}`));
    c.onUnhandledProgress((p: { token: string | number; value: ProgressValue }) => {
      progress.set(p.token, [...(progress.get(p.token) ?? []), p.value]);
    });
    // stdout must carry protocol messages only: anything else breaks the reader.
    c.onError(([error]) => protocolErrors.push(error.message));
    c.listen();
    connection = c;
  });

  after(async () => {
    if (server !== undefined && server.exitCode === null) {
      server.kill();
    }
    connection?.dispose();
    if (tmp !== '') {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
    if (failed || process.env.ZL_E2E_VERBOSE === '1') {
      process.stderr.write(`--- server stderr ---\n${stderr}\n--- window/logMessage ---\n${logs.join('\n')}\n`);
    }
  });

  it('initializes with the extension settings mapping', async () => {
    // As the extension does: only the settings the user set, here `zeroLatency.store.path`.
    const user: Record<string, InspectedValue> = { 'store.path': { globalValue: path.join(tmp, 'store') } };
    const initializationOptions = buildInitializationOptions((key) => user[key]);
    assert.deepEqual(initializationOptions, { storePath: path.join(tmp, 'store') });
    const folderUri = pathToFileURL(workspace).toString();
    const result = await conn().sendRequest<{ capabilities: { experimental?: { docs?: { version: number } } } }>('initialize', {
      processId: process.pid,
      clientInfo: { name: 'zero-latency-vscode-e2e' },
      rootUri: folderUri,
      workspaceFolders: [{ uri: folderUri, name: 'workspace' }],
      capabilities: {
        window: { workDoneProgress: true },
        workspace: { workspaceFolders: true, configuration: true, didChangeWatchedFiles: { dynamicRegistration: true } },
        textDocument: { synchronization: { dynamicRegistration: true, didSave: true } },
      },
      initializationOptions,
    });
    assert.equal(result.capabilities.experimental?.docs?.version, 1);
    await conn().sendNotification('initialized', {});
  });

  let indexResult: IndexResult | undefined;

  it('docs/index indexes the workspace, reporting progress on the client token', async (t) => {
    const token = 'e2e/index';
    const values: ProgressValue[] = [];
    const sub = conn().onProgress(workDoneProgress, token, (v) => values.push(v));
    try {
      indexResult = await index(conn(), buildIndexParams({ workDoneToken: token }));
    } finally {
      sub.dispose();
    }
    assert.deepEqual(indexResult.errors, []);
    assert.equal(indexResult.files, 5, JSON.stringify(indexResult));
    assert.ok(indexResult.chunks > 10, JSON.stringify(indexResult));
    // The Reindex command shows this progress: begin … end on the token it sent.
    assert.deepEqual([values[0]?.kind, values[values.length - 1]?.kind], ['begin', 'end'], JSON.stringify(values));
    // The start-up indexing reports on a server-created token (the status bar follows it). It
    // may run before or after this request, so wait for its end.
    const background = await waitFor(() => [...progress.values()].find((v) => v[0]?.kind === 'begin' && v[v.length - 1]?.kind === 'end'), 60_000);
    assert.ok(background !== undefined, `no begin…end $/progress for the start-up indexing: ${JSON.stringify([...progress.entries()])}`);
    t.diagnostic(`start-up indexing progress: ${background.map((v) => v.kind).join(', ')}`);
  });

  it('docs/status counts the files (the status bar text)', async () => {
    const result = await status(conn());
    assert.equal(result.files, 5);
    assert.equal(result.chunks, indexResult!.chunks);
    assert.ok(['idle', 'indexing'].includes(result.state), result.state);
    const text = statusBar({ kind: 'running', status: result }).text;
    if (result.state === 'idle') {
      assert.match(text, /Zero-Latency: 5 files · \d+ chunks$/);
    }
  });

  it('zl/status pushes the docs/status object as it changes (the status bar listens to it)', async () => {
    const settled = await waitFor(() => pushedStatus.find((s) => s.state === 'idle' && s.files === 5 && s.pendingFiles === 0), 60_000);
    assert.ok(settled !== undefined, `no idle zl/status with 5 files: ${JSON.stringify(pushedStatus.map((s) => [s.state, s.files]))}`);
    assert.deepEqual(await status(conn()), pushedStatus[pushedStatus.length - 1]);
  });

  it('docs/search finds the right file and line range (hybrid)', async () => {
    const params = buildSearchParams('how do I rotate the signing keys', { limit: 5 });
    assert.ok(params !== undefined);
    const result: SearchResult = await search(conn(), params);
    assert.ok(result.hits.length > 0, 'no hits');
    assert.equal(result.indexState, 'ready');
    const best = result.hits[0]!;
    assert.equal(hitPath(best.uri), path.join(workspace, 'docs', 'keys.md'), JSON.stringify(result.hits.slice(0, 3), null, 1));
    assert.ok(best.range.start.line <= KEY_ROTATION_LINE && KEY_ROTATION_LINE <= best.range.end.line, JSON.stringify(best.range));
    assert.ok(best.range.end.line <= 10, `the chunk runs into the next section: ${JSON.stringify(best.range)}`);
    assert.deepEqual(best.headingPath, ['Operations', 'Key rotation']);
    const groups = groupByFile(result.hits, [pathToFileURL(workspace).toString()]);
    assert.equal(groups[0]!.label, 'docs/keys.md');
    // The row points at the answer (matchRange), inside the hit's range.
    const answer = targetRange(best);
    assert.ok(best.matchRange !== undefined, 'the server sends matchRange');
    assert.ok(best.range.start.line <= answer.start.line && answer.start.line <= best.range.end.line, JSON.stringify(best));
    assert.equal(groups[0]!.hits[0]!.line, answer.start.line + 1);
  });

  it('docs/search keyword mode finds a rare word', async () => {
    const result = await search(conn(), buildSearchParams('zanzibar', { mode: 'keyword', limit: 3 })!);
    assert.ok(result.hits.length > 0, 'no hits');
    const best = result.hits[0]!;
    assert.equal(hitPath(best.uri), path.join(workspace, ZANZIBAR_FILE));
    assert.ok(best.range.start.line <= ZANZIBAR_LINE && ZANZIBAR_LINE <= best.range.end.line, JSON.stringify(best.range));
    assert.ok(best.snippet.includes('zanzibar'), best.snippet);
  });

  it('invalid params get -32602 and the server stays up', async () => {
    await assert.rejects(
      conn().sendRequest('docs/search', { query: 'keys', limit: 1000 }),
      (error: unknown) => errorCode(error) === ErrorCodes.invalidParams,
    );
  });

  it('a forced docs/index can be cancelled with a CancellationToken', async (t) => {
    const baseline = Date.now();
    await index(conn(), buildIndexParams());
    t.diagnostic(`plain reindex, nothing changed: ${Date.now() - baseline} ms`);
    const token = 'e2e/force';
    const source = new CancellationTokenSource();
    // Cancel once the server has started the work (its `begin`), or after a moment without one.
    const timer = setTimeout(() => source.cancel(), 1000);
    const sub = conn().onProgress(workDoneProgress, token, (v) => {
      if (v.kind === 'begin') {
        setTimeout(() => source.cancel(), 100);
      }
    });
    const started = Date.now();
    let outcome: 'cancelled' | 'completed';
    try {
      const result = await index(conn(), buildIndexParams({ force: true, workDoneToken: token }), source.token);
      outcome = 'completed';
      assert.deepEqual(result.errors, []);
    } catch (error) {
      assert.equal(errorCode(error), ErrorCodes.requestCancelled, `expected RequestCancelled, got ${String(error)}`);
      outcome = 'cancelled';
    } finally {
      clearTimeout(timer);
      sub.dispose();
    }
    t.diagnostic(`forced reindex: ${outcome} after ${Date.now() - started} ms`);
    // A cancelled run must not leave the index worker busy: a plain reindex is quick again.
    const again = Date.now();
    const plain = await index(conn(), buildIndexParams());
    assert.equal(plain.files, 5);
    assert.deepEqual(plain.errors, []);
    t.diagnostic(`plain reindex after it: ${Date.now() - again} ms, ${plain.embeddedChunks} chunks embedded`);
    // Either way the server answers and the index still finds the document.
    const result = await search(conn(), buildSearchParams('rotate the signing keys', { limit: 3 })!);
    assert.ok(result.hits.some((h) => hitPath(h.uri) === path.join(workspace, 'docs', 'keys.md')));
    const after = await status(conn());
    assert.equal(after.files, 5);
  });

  it('shutdown and exit end the process cleanly', async () => {
    const proc = server!;
    const exited = new Promise<number | null>((resolve) => {
      if (proc.exitCode !== null) resolve(proc.exitCode);
      proc.once('exit', (code) => resolve(code));
    });
    await conn().sendRequest('shutdown');
    await conn().sendNotification('exit');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), 20_000)));
    const code = await Promise.race([exited, timeout]);
    clearTimeout(timer);
    assert.equal(code, 0, `server exit: ${String(code)}`);
    assert.deepEqual(protocolErrors, [], 'non-protocol output on stdout');
  });
});
