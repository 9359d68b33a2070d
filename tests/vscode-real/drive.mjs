// Drives a running code-server (real VS Code in the browser) through headless Chromium, the
// way a user would, for tests/test_vscode_real.py. It performs the steps and reports what the
// window shows as one JSON object per line on stdout; the pytest side checks them (and the
// server process) so every assertion lives in one place.
//
// Usage: node drive.mjs <config.json>
//   { "scenario": "search" | "related" | "workspaceSettings" | "firstIndex", "url", "chromium", "expectedFiles",
//     "query", "editText", "editWord", "editQuery", "longQuery", "sidebarWidth", "narrowWidth",
//     "emptyQueries", "keywordQuery", "emptyFolder", "shots", "timeoutMs" }
// Before closing the window it prints {"event":"readyToClose"} and waits for a line on stdin,
// so the test can find the server process while the window is still open.
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const timeout = config.timeoutMs;
const STATUS_ITEM = '[id="zero-latency.zero-latency.zeroLatency.status"]';
let shotCount = 0;

function report(event, fields = {}) {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}

async function shot(page, name) {
  shotCount += 1;
  const path = join(config.shots, `${String(shotCount).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path }).then(
    () => report('screenshot', { path }),
    (error) => report('screenshotFailed', { name, message: String(error) }),
  );
}

/** Polls `probe` until it returns a value other than undefined (or the time is up). */
async function until(what, probe, ms = timeout) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe().catch((error) => {
      report('probeError', { what, message: String(error) });
      return undefined;
    });
    if (last !== undefined) {
      return last;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The search view's inner frame (webviews nest two iframes). */
async function searchFrame(page) {
  return until('the search view', async () => {
    for (const frame of page.frames()) {
      if (frame.isDetached()) continue;
      if ((await frame.locator('#query').count().catch(() => 0)) > 0) return frame;
    }
    return undefined;
  });
}

/** The results on screen: one entry per hit, with the file label it is grouped under. */
async function readHits(frame) {
  return frame.locator('#results').evaluate((root) => {
    const hits = [];
    for (const section of root.querySelectorAll('section.file')) {
      const name = section.querySelector('.file-name');
      const file = name?.firstChild?.textContent ?? '';
      section.querySelectorAll('.hit').forEach((hit, index) => {
        const lineText = hit.querySelector('.line')?.textContent ?? '';
        hits.push({
          file,
          index,
          heading: hit.querySelector('.heading')?.textContent ?? '',
          line: Number(lineText.replace(/^line /, '')),
          snippet: hit.querySelector('.snippet')?.textContent ?? '',
          score: hit.querySelector('.score')?.textContent ?? '',
          source: hit.dataset.source ?? '',
          badge: hit.querySelector('.source-badge')?.textContent ?? '',
        });
      });
    }
    return hits;
  });
}

/** Progress items about Zero-Latency on screen now: the extension's status item when it spins,
 * the window progress entry (where VS Code shows a server's `$/progress`), notification toasts
 * with a progress bar. */
async function progressItems(page) {
  return page.evaluate(() => {
    const items = [];
    const ours = document.getElementById('zero-latency.zero-latency.zeroLatency.status');
    if (ours?.querySelector('.codicon-modifier-spin, [class*="~spin"]')) items.push(`statusItem: ${ours.textContent}`);
    const windowProgress = document.getElementById('status.progress');
    const text = `${windowProgress?.getAttribute('aria-label') ?? ''} ${windowProgress?.textContent ?? ''}`;
    if (windowProgress !== null && /Zero-Latency/.test(text)) items.push(`windowProgress: ${text.trim()}`);
    for (const toast of document.querySelectorAll('.notification-toast')) {
      if (/Zero-Latency/.test(toast.textContent ?? '') && toast.querySelector('.monaco-progress-container.active')) {
        items.push(`notification: ${toast.textContent}`);
      }
    }
    return items;
  });
}

/** Records the Zero-Latency progress items on screen now into `progress`: the most seen at
 * once, and which kinds were ever seen. */
async function sampleProgress(page, progress) {
  const items = await progressItems(page);
  progress.samples += 1;
  if (items.length > progress.most.length) progress.most = items;
  for (const item of items) {
    const kind = item.split(':')[0];
    if (!progress.seen.includes(kind)) progress.seen.push(kind);
    if (progress.texts !== undefined && !progress.texts.includes(item) && progress.texts.length < 100) progress.texts.push(item);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** What the search view shows now: the query, the hits, the summary (with its empty kind and
 * how many times the extension re-ran the query by itself), and the coverage line (the server's
 * notice while it has one, else the view's own coverage line). */
async function viewState(frame) {
  const shown = async (id) => {
    const el = frame.locator(`#${id}`);
    return (await el.isVisible()) ? ((await el.textContent()) ?? '') : '';
  };
  const summary = await frame.locator('#summary').evaluate((el) => ({
    text: el.textContent ?? '', kind: el.dataset.empty ?? '', refreshed: Number(el.dataset.refreshed ?? '0'),
  }));
  return {
    query: await frame.locator('#query').inputValue(),
    hits: await readHits(frame),
    summary: summary.text,
    kind: summary.kind,
    refreshed: summary.refreshed,
    notice: await shown('notice'),
    coverage: await shown('coverage'),
  };
}

/** The hits as the test compares them: file, line and score, in display order. */
function hitsKey(view) {
  return JSON.stringify(view.hits.map((hit) => [hit.file, hit.line, hit.score]));
}

/** The cursor as the status bar shows it: "Ln 12, Col 1 (345 selected)". */
async function cursorText(page) {
  return ((await page.locator('[id="status.editor.selection"]').textContent({ timeout: 1000 }).catch(() => null)) ?? '').trim();
}

/** Drags the sash at the sidebar's right edge until the sidebar is `width` px wide. */
async function setSidebarWidth(page, width, ms = timeout, slack = 1) {
  const sidebar = page.locator('.part.sidebar').first();
  let reached;
  return until(`the sidebar to be ${width} px wide`, async () => {
    const box = await sidebar.boundingBox();
    if (box === null) return undefined;
    if (Math.abs(box.width - width) < slack) return box.width;
    if (box.width !== reached) {
      reached = box.width;
      report('sidebarDragged', { wanted: width, width: box.width }); // where a failed drag stopped
    }
    // The sash on the sidebar's right edge (the vertical one nearest it), dragged by its middle.
    const edge = box.x + box.width;
    const sash = await page.evaluate(({ edge, top, bottom }) => {
      let best;
      for (const el of document.querySelectorAll('.monaco-sash.vertical')) {
        const r = el.getBoundingClientRect();
        const x = r.left + r.width / 2;
        if (r.width === 0 || r.bottom <= top || r.top >= bottom) continue;
        if (best === undefined || Math.abs(x - edge) < Math.abs(best.x - edge)) {
          best = { x, y: Math.max(r.top, top) + (Math.min(r.bottom, bottom) - Math.max(r.top, top)) / 2 };
        }
      }
      return best;
    }, { edge, top: box.y, bottom: box.y + box.height });
    const grip = sash !== undefined && Math.abs(sash.x - edge) < 8 ? sash : { x: edge, y: box.y + box.height / 2 };
    await page.mouse.move(grip.x, grip.y);
    await page.mouse.down();
    await page.mouse.move(grip.x + (width - box.width), grip.y, { steps: 5 });
    await page.mouse.up();
    return undefined;
  });
}

/** Boxes of the file names, count badges and headings in the results (webview pixels). */
async function resultLayout(frame) {
  return frame.locator('#results').evaluate((root) => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { left: r.left, right: r.right, width: r.width };
    };
    return {
      viewport: document.documentElement.clientWidth,
      files: [...root.querySelectorAll('section.file')].map((section) => {
        const name = section.querySelector('.file-name .name') ?? section.querySelector('.file-name');
        const count = section.querySelector('.count');
        return {
          label: name.textContent,
          title: name.title,
          name: box(name),
          count: box(count),
          nameClipped: name.scrollWidth > name.clientWidth,
          headings: [...section.querySelectorAll('.heading')].map((h) => ({
            text: h.textContent, title: h.title, clipped: h.scrollWidth > h.clientWidth, box: box(h),
            // Where the text itself lies: cut from the left, its end stays in the box.
            textBox: box(h.querySelector('.heading-text') ?? h),
          })),
        };
      }),
    };
  });
}

/** The rows of the Related view: label, and the "file:line" description. */
async function relatedRows(page) {
  const pane = page.locator('.pane').filter({ has: page.locator('.pane-header', { hasText: /^Related/i }) }).first();
  return pane.locator('.monaco-list-row').evaluateAll((rows) => rows.map((row) => ({
    label: row.querySelector('.label-name')?.textContent ?? row.textContent ?? '',
    description: row.querySelector('.label-description')?.textContent ?? '',
  })));
}

/** Runs `query` in the view (typed as a user types it) and waits for results to show. */
async function search(frame, query, accept) {
  const input = frame.locator('#query');
  await input.click();
  await input.fill('');
  await input.pressSequentially(query, { delay: 15 });
  // Enter searches now; again on every poll, since an edit only shows on the next search.
  return until(`results for "${query}"`, async () => {
    await input.press('Enter');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const hits = await readHits(frame);
    const summary = (await frame.locator('#summary').textContent()) ?? '';
    const notice = (await frame.locator('#notice').isVisible()) ? await frame.locator('#notice').textContent() : '';
    return accept(hits) ? { hits, summary, notice } : undefined;
  });
}

/** Runs `query` and reports what the view says once its answer shows: the empty state (#summary's
 * data-empty) and text, and the hits (an off-topic question may still find weak ones). */
async function searchSettled(frame, query, mode = 'hybrid') {
  const input = frame.locator('#query');
  const select = frame.locator('#mode');
  await input.click();
  await input.fill('');
  await input.press('Enter'); // an empty query clears the list and the summary at once
  await until('the summary to clear', async () => ((await frame.locator('#summary').textContent()) === '' ? true : undefined));
  if ((await select.inputValue()) !== mode) {
    await select.selectOption(mode); // as a user picks it (with the box empty: nothing is asked)
    await until('the summary to stay clear', async () => ((await frame.locator('#summary').textContent()) === '' ? true : undefined));
  }
  await input.click();
  await input.pressSequentially(query, { delay: 15 });
  await input.press('Enter');
  return until(`the answer to "${query}"`, async () => {
    const state = await frame.locator('#summary').evaluate((el) => ({ kind: el.dataset.empty ?? '', text: el.textContent ?? '' }));
    return state.text !== '' ? { query, mode, ...state, hits: await readHits(frame) } : undefined;
  });
}

/** A second window of the same code-server on a folder with no documents: its search view's
 * answer to a query (the empty state it shows), then the window closed. */
async function emptyWorkspace(browser, query) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(timeout);
  page.on('dialog', (dialog) => void dialog.accept().catch(() => undefined));
  const url = new URL(config.url);
  url.searchParams.set('folder', config.emptyFolder);
  await page.goto(url.toString());
  await page.locator('.monaco-workbench').waitFor();
  await page.locator('.activitybar [aria-label="Zero-Latency"]').first().click();
  const frame = await searchFrame(page);
  const input = frame.locator('#query');
  await input.click();
  await input.pressSequentially(query, { delay: 15 });
  // Enter until the server answers (it may still be starting): then the summary says why.
  const state = await until(`the empty workspace's answer to "${query}"`, async () => {
    await input.press('Enter');
    await sleep(500);
    const view = await viewState(frame);
    return view.summary !== '' ? { query, folder: config.emptyFolder, kind: view.kind, text: view.summary, hits: view.hits } : undefined;
  });
  await shot(page, 'empty-workspace');
  await page.close({ runBeforeUnload: true });
  return state;
}

/** The query box and the mode list: boxes in webview pixels. */
async function barLayout(frame) {
  return frame.locator('.bar').evaluate((bar) => {
    const box = (el) => {
      const r = el.getBoundingClientRect();
      return { left: r.left, right: r.right, width: r.width, top: r.top, bottom: r.bottom };
    };
    return { viewport: document.documentElement.clientWidth, bar: box(bar), query: box(bar.querySelector('#query')), mode: box(bar.querySelector('#mode')) };
  });
}

/** The notifications of this window, as the notification center lists them (it keeps those
 * whose toasts have gone): opened from the status bar's bell, read, closed again. */
async function notificationTexts(page) {
  const bell = page.locator('[id="status.notifications"]');
  const center = page.locator('.notifications-center');
  await bell.click();
  await center.waitFor({ state: 'visible' });
  const texts = await center.locator('.notification-list-item').evaluateAll((items) => items.map((item) =>
    (item.querySelector('.notification-list-item-message')?.textContent ?? item.textContent ?? '').trim()));
  await bell.click();
  await center.waitFor({ state: 'hidden' });
  return texts;
}

let stdinLines;
/** The next line the test writes to stdin. */
function nextLine() {
  stdinLines ??= createInterface({ input: process.stdin });
  return new Promise((resolve) => stdinLines.once('line', resolve));
}

/** Waits for a line on stdin, then closes the window the way a user closes the tab (unload
 * handlers run). */
async function closeWhenTold(page) {
  await nextLine();
  stdinLines.close();
  await page.close({ runBeforeUnload: true });
  await until('the page to close', async () => (page.isClosed() ? true : undefined));
  report('closed');
}

/**
 * The first index, its dense backfill held back by the workspace's real setting
 * (backfillChunksPerSecond): a query typed once while meaning covers only part of the index,
 * then nothing typed while the list (its coverage line, its hits) follows the index by itself.
 * Meanwhile how many progress items show at once. Then the view in a 170 px sidebar.
 */
async function firstIndex(page) {
  const progress = { samples: 0, most: [], seen: [], texts: [] };
  await page.locator('.activitybar [aria-label="Zero-Latency"]').first().click();
  const frame = await searchFrame(page);
  report('viewOpen');
  const input = frame.locator('#query');
  await input.click();
  await input.pressSequentially(config.query, { delay: 15 });
  // Enter until an answer with hits and a coverage line shows (the server may still be starting).
  const first = await until('a partial answer (hits and a coverage line)', async () => {
    await sampleProgress(page, progress);
    await input.press('Enter');
    await sleep(500);
    const view = await viewState(frame);
    const covered = /[\d,]+ of [\d,]+ chunks/.test(`${view.notice} ${view.coverage}`);
    return view.hits.length > 0 && (covered || (view.notice === '' && view.coverage === '')) ? view : undefined;
  });
  if (first.notice === '' && first.coverage === '') {
    // A complete answer: the backfill ended before the test could watch it (too fast).
    throw new Error(`the index was complete before a partial answer showed: ${JSON.stringify(first)}`);
  }
  await shot(page, 'live-first');
  report('liveFirst', first);

  // From here on nothing is typed: every change on screen is the extension's own re-run.
  const states = [first];
  const updated = await until('the open list to follow the index (coverage line and hits)', async () => {
    await sampleProgress(page, progress);
    const view = await viewState(frame);
    const last = states[states.length - 1];
    if (hitsKey(view) !== hitsKey(last) || view.notice !== last.notice || view.coverage !== last.coverage || view.summary !== last.summary) {
      states.push(view);
    }
    const lineChanged = view.notice !== first.notice || view.coverage !== first.coverage;
    return view.refreshed > 0 && lineChanged && hitsKey(view) !== hitsKey(first) && view.hits.length > 0 ? view : undefined;
  });
  await shot(page, 'live-updated');
  report('liveUpdated', { first, updated, states });
  // The progress item's rate and time left, once it has one (after the second group).
  await until('a progress report with a rate', async () => {
    await sampleProgress(page, progress);
    return progress.texts.some((text) => /[\d.]\/s/.test(text)) ? true : undefined;
  });
  report('progress', progress);

  // A 170 px sidebar: the query box keeps a usable width beside the mode list.
  const sidebarWidth = await setSidebarWidth(page, config.narrowWidth);
  const bar = await until('the view to lay out at the new width', async () => {
    const layout = await barLayout(frame);
    return layout.viewport <= config.narrowWidth ? layout : undefined;
  });
  await shot(page, 'narrow');
  report('narrow', { sidebarWidth, ...bar });
  report('readyToClose');
  await closeWhenTold(page);
}

async function main() {
  const browser = await chromium.launch({
    executablePath: config.chromium,
    headless: true,
    // Without the background-networking flags Chromium floods a closed network with retries.
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.setDefaultTimeout(timeout);
  // Closing a window with an unsaved buffer asks first: leave, as a user closing it would.
  page.on('dialog', (dialog) => void dialog.accept().catch(() => undefined));
  try {
    await page.goto(config.url);
    await page.locator('.monaco-workbench').waitFor();
    report('workbench');
    if (config.scenario === 'firstIndex') {
      await firstIndex(page);
      return;
    }

    // The status item: idle with every copied file indexed ("0 files" shows before the scan).
    const wanted = new RegExp(`Zero-Latency: ${config.expectedFiles} files · ([\\d,]+) chunks`);
    // Meanwhile, how many progress items show at once (one: the server's).
    const progress = { samples: 0, most: [], seen: [] };
    const statusText = await until('the status bar to report the index', async () => {
      const items = await progressItems(page);
      progress.samples += 1;
      if (items.length > progress.most.length) progress.most = items;
      for (const item of items) {
        const kind = item.split(':')[0];
        if (!progress.seen.includes(kind)) progress.seen.push(kind);
      }
      const text = (await page.locator(STATUS_ITEM).textContent({ timeout: 1000 }).catch(() => null)) ?? '';
      return wanted.test(text) ? text.trim() : undefined;
    });
    report('progress', progress);
    const tooltip = await page.locator(STATUS_ITEM).getAttribute('aria-label');
    await shot(page, 'indexed'); // before each report: the test may stop at the report
    report('indexed', { status: statusText, ariaLabel: tooltip });

    // The sidebar view, opened from its activity bar icon.
    await page.locator('.activitybar [aria-label="Zero-Latency"]').first().click();
    const frame = await searchFrame(page);
    report('viewOpen');

    const found = await search(frame, config.query, (hits) => hits.length > 0);
    await shot(page, 'results');
    report('results', found);

    if (config.scenario === 'workspaceSettings') {
      // What the window told the user (a workspace's settings were ignored), now and again
      // after the test changed the user's settings (which restarts the server).
      const seen = (texts) => texts.some((text) => text.includes('Zero-Latency')) ? texts : undefined;
      await shot(page, 'notifications');
      report('notifications', { texts: await until('a Zero-Latency notification', async () => seen(await notificationTexts(page))) });
      await nextLine();
      report('notifications', { texts: await notificationTexts(page) });
      await shot(page, 'after-user-settings');
      report('readyToClose');
      await closeWhenTold(page);
      return;
    }

    // Open the first hit; the editor shows its file with the hit's matchRange (else its range)
    // selected and the cursor at its start.
    const first = found.hits[0];
    const firstHit = frame.locator('section.file').first().locator('.hit').first();
    const selection = await firstHit.getAttribute('data-selection');
    await firstHit.click();
    const opened = await until('the editor to open the hit', async () => {
      const tab = ((await page.locator('.tabs-container .tab.active').first().getAttribute('aria-label').catch(() => null)) ?? '').trim();
      const cursor = await cursorText(page);
      const match = /Ln (\d+), Col (\d+)(?: \((\d+) selected\))?/.exec(cursor);
      // Done once the selection shows (the cursor moves there first).
      return tab.includes(first.file.split('/').pop()) && match !== null && match[3] !== undefined
        ? { tab, cursor, line: Number(match[1]), column: Number(match[2]), selected: Number(match[3]), selection }
        : undefined;
    });
    await shot(page, 'opened');
    report('opened', { hit: first, ...opened });

    if (config.scenario === 'related' && !config.related) {
      report('readyToClose'); // the server has no docs/related yet: only the log is checked
      await closeWhenTold(page);
      return;
    }
    if (config.scenario === 'related') {
      // The Related view follows the cursor: passages from other files; a click opens one.
      // It follows the cursor, which passes through line 1 as the hit opens: the list of that
      // position may show first (one row, in a loaded CI run) and then give way to the hit's.
      // So the rows are taken once they have stayed the same for a second, and the row
      // clicked is found by its text, not its place.
      let previous = '';
      let changedAt = Date.now();
      const rows = await until('the Related view to list passages', async () => {
        const found = await relatedRows(page);
        const key = JSON.stringify(found);
        if (key !== previous) {
          previous = key;
          changedAt = Date.now();
        }
        return Date.now() - changedAt >= 1000 && found.length > 0 && found.every((row) => /:\d+$/.test(row.description))
          ? found : undefined;
      });
      await shot(page, 'related');
      report('related', { rows });
      const pane = page.locator('.pane').filter({ has: page.locator('.pane-header', { hasText: /^Related/i }) }).first();
      await pane.locator('.monaco-list-row').filter({ hasText: rows[0].description }).first().click();
      const target = rows[0].description.replace(/:\d+$/, '').split('/').pop();
      const relatedOpened = await until('the editor to open the related passage', async () => {
        const tab = ((await page.locator('.tabs-container .tab.active').first().getAttribute('aria-label').catch(() => null)) ?? '').trim();
        const cursor = await cursorText(page);
        const match = /Ln (\d+), Col (\d+)(?: \((\d+) selected\))?/.exec(cursor);
        return tab.includes(target) && match !== null && match[3] !== undefined
          ? { tab, cursor, line: Number(match[1]), selected: Number(match[3]) }
          : undefined;
      });
      await shot(page, 'related-opened');
      report('relatedOpened', { row: rows[0], ...relatedOpened });
      report('readyToClose');
      await closeWhenTold(page);
      return;
    }

    // Type into the open document without saving; the new text must become searchable.
    await page.keyboard.press('Control+1'); // focus the editor group (the click left focus in the view)
    await page.keyboard.press('Home');
    await page.keyboard.type(config.editText, { delay: 10 });
    await page.keyboard.press('Enter');
    const dirty = await until('the tab to show unsaved changes', async () =>
      (await page.locator('.tabs-container .tab.active.dirty').count()) > 0 ? true : undefined);
    report('edited', { dirty });
    const afterEdit = await search(frame, config.editQuery,
      (hits) => hits.some((hit) => hit.snippet.includes(config.editWord)));
    await shot(page, 'edit-found');
    report('editFound', afterEdit);

    // A 300 px sidebar: long file names are cut short, their count badges stay in view.
    const sidebarWidth = await setSidebarWidth(page, config.sidebarWidth);
    const long = await search(frame, config.longQuery, (hits) => hits.some((hit) => hit.file.length > 60));
    const layout = await resultLayout(frame);
    await shot(page, 'layout');
    report('layout', { sidebarWidth, hits: long.hits, ...layout });

    // Empty states: an off-topic query and gibberish each say why nothing shows.
    const empties = [];
    for (const query of config.emptyQueries ?? []) {
      empties.push(await searchSettled(frame, query));
    }
    await shot(page, 'empty-state');
    // Gibberish in keyword mode: no passage has these words.
    empties.push(await searchSettled(frame, config.keywordQuery, 'keyword'));
    await shot(page, 'empty-state-keyword');
    report('emptyStates', { states: empties });
    // A folder with no documents, in a second window (its own `zl serve`, closed again).
    report('emptyWorkspace', await emptyWorkspace(browser, config.query));

    report('readyToClose');
    await closeWhenTold(page);
  } catch (error) {
    await shot(page, 'failure');
    report('error', { message: String(error?.stack ?? error) });
    process.exitCode = 1;
  } finally {
    await browser.close().catch(() => undefined);
  }
}

await main();
