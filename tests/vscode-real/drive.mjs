// Drives a running code-server (real VS Code in the browser) through headless Chromium, the
// way a user would, for tests/test_vscode_real.py. It performs the steps and reports what the
// window shows as one JSON object per line on stdout; the pytest side checks them (and the
// server process) so every assertion lives in one place.
//
// Usage: node drive.mjs <config.json>
//   { "url", "chromium", "expectedFiles", "query", "editText", "editWord", "editQuery", "shots",
//     "timeoutMs" }
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
        });
      });
    }
    return hits;
  });
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

    // The status item: idle with every copied file indexed ("0 files" shows before the scan).
    const wanted = new RegExp(`Zero-Latency: ${config.expectedFiles} files · ([\\d,]+) chunks`);
    const statusText = await until('the status bar to report the index', async () => {
      const text = (await page.locator(STATUS_ITEM).textContent({ timeout: 1000 }).catch(() => null)) ?? '';
      return wanted.test(text) ? text.trim() : undefined;
    });
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

    // Open the first hit; the editor shows its file with the cursor on its line.
    const first = found.hits[0];
    await frame.locator('section.file').first().locator('.hit').first().click();
    const opened = await until('the editor to open the hit', async () => {
      const tab = ((await page.locator('.tabs-container .tab.active').first().getAttribute('aria-label').catch(() => null)) ?? '').trim();
      const cursor = ((await page.locator('[id="status.editor.selection"]').textContent({ timeout: 1000 }).catch(() => null)) ?? '').trim();
      const match = /Ln (\d+), Col (\d+)/.exec(cursor);
      return tab.includes(first.file.split('/').pop()) && match !== null ? { tab, cursor, line: Number(match[1]) } : undefined;
    });
    await shot(page, 'opened');
    report('opened', { hit: first, ...opened });

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

    report('readyToClose');
    const lines = createInterface({ input: process.stdin });
    await new Promise((resolve) => lines.once('line', resolve));
    lines.close();
    // Close the window the way a user closes the tab: unload handlers run.
    await page.close({ runBeforeUnload: true });
    await until('the page to close', async () => (page.isClosed() ? true : undefined));
    report('closed');
  } catch (error) {
    await shot(page, 'failure');
    report('error', { message: String(error?.stack ?? error) });
    process.exitCode = 1;
  } finally {
    await browser.close().catch(() => undefined);
  }
}

await main();
