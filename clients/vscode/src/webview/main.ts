// The search view (runs inside the webview). It only collects input and renders results: the
// extension validates every message and talks to the server. Server text is only ever put in
// the page through textContent, never as HTML.
import type { FileGroup, FromView, SearchMode, ToView, ViewHit } from '../types';

interface VsCodeApi {
  postMessage(message: FromView): void;
  getState(): unknown;
  setState(state: SavedState): void;
}
interface SavedState {
  query: string;
  mode: SearchMode;
}
declare function acquireVsCodeApi(): VsCodeApi;

const DEBOUNCE_MS = 250;
const vscode = acquireVsCodeApi();

const input = element<HTMLInputElement>('query');
const modeSelect = element<HTMLSelectElement>('mode');
const summary = element<HTMLDivElement>('summary');
const notice = element<HTMLDivElement>('notice');
const coverage = element<HTMLDivElement>('coverage');
const list = element<HTMLDivElement>('results');

let seq = 0;
let timer: ReturnType<typeof setTimeout> | undefined;
/** The user has typed or chosen a mode: a late `init` must not overwrite it. */
let touched = false;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (found === null) {
    throw new Error(`search view: #${id} is missing`);
  }
  return found as T;
}

function currentMode(): SearchMode {
  const value = modeSelect.value;
  return value === 'semantic' || value === 'keyword' ? value : 'hybrid';
}

function save(): void {
  vscode.setState({ query: input.value, mode: currentMode() });
}

/** Sends the query now; every request gets a new seq so late answers to old ones are dropped. */
function searchNow(): void {
  if (timer !== undefined) {
    clearTimeout(timer);
    timer = undefined;
  }
  seq += 1;
  save();
  if (input.value.trim() === '') {
    list.replaceChildren();
    summary.textContent = '';
    delete summary.dataset.empty;
    notice.hidden = true;
    coverage.hidden = true;
  }
  vscode.postMessage({ type: 'search', seq, query: input.value, mode: currentMode() });
}

function searchSoon(): void {
  if (timer !== undefined) {
    clearTimeout(timer);
  }
  timer = setTimeout(searchNow, DEBOUNCE_MS);
}

function snippetNode(hit: ViewHit): HTMLElement {
  const node = document.createElement('div');
  node.className = 'snippet';
  let at = 0;
  for (const h of hit.highlights) {
    node.append(hit.snippet.slice(at, h.start));
    const mark = document.createElement('mark');
    mark.textContent = hit.snippet.slice(h.start, h.start + h.length);
    node.append(mark);
    at = h.start + h.length;
  }
  node.append(hit.snippet.slice(at));
  return node;
}

function hitNode(group: FileGroup, hit: ViewHit): HTMLElement {
  const item = document.createElement('button');
  item.type = 'button';
  item.className = 'hit';
  const unsaved = hit.source === 'buffer';
  item.title = `${group.label}:${hit.line} (score ${hit.score.toFixed(3)}${unsaved ? ', from the unsaved editor buffer' : ''})`;
  item.dataset.source = hit.source;
  const head = document.createElement('div');
  head.className = 'hit-head';
  // Cut from the left (CSS: rtl outside, the text isolated ltr inside): the most specific part
  // of the heading path stays in view.
  const heading = document.createElement('span');
  heading.className = 'heading';
  const headingText = document.createElement('span');
  headingText.className = 'heading-text';
  headingText.textContent = hit.heading !== '' ? hit.heading : '(no heading)';
  heading.append(headingText);
  heading.title = headingText.textContent; // the full path when the line cuts it short
  const line = document.createElement('span');
  line.className = 'line';
  line.textContent = `line ${hit.line}`;
  const score = document.createElement('span');
  score.className = 'score';
  score.textContent = hit.score.toFixed(2);
  score.title = `relevance ${hit.score.toFixed(3)} (0–1, the server's)`;
  head.append(heading);
  if (unsaved) {
    const badge = document.createElement('span');
    badge.className = 'source-badge';
    badge.textContent = 'unsaved';
    badge.title = 'Found in the editor\'s unsaved text, not the file on disk';
    head.append(badge);
  }
  head.append(line, score);
  item.append(head, snippetNode(hit));
  // Where opening selects (the hit's matchRange, else its range): read by the real-VS-Code test.
  const { start, end } = hit.range;
  item.dataset.selection = `${start.line}:${start.character}-${end.line}:${end.character}`;
  item.addEventListener('click', () => vscode.postMessage({ type: 'open', uri: group.uri, range: hit.range }));
  return item;
}

function render(groups: FileGroup[]): void {
  const nodes = groups.map((group) => {
    const section = document.createElement('section');
    section.className = 'file';
    const title = document.createElement('div');
    title.className = 'file-name';
    // The name shrinks (ellipsized, full on hover); the count badge keeps its size.
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = group.label;
    name.title = group.label;
    const count = document.createElement('span');
    count.className = 'count';
    count.textContent = String(group.hits.length);
    title.append(name, count);
    section.append(title, ...group.hits.map((hit) => hitNode(group, hit)));
    return section;
  });
  list.replaceChildren(...nodes);
}

function showNotice(text: string | undefined): void {
  notice.textContent = text ?? '';
  notice.title = text ?? ''; // two lines at most on screen (CSS), whole on hover
  notice.hidden = text === undefined || text === '';
}

window.addEventListener('message', (event: MessageEvent<ToView>) => {
  const message = event.data;
  switch (message.type) {
    case 'init': {
      if (touched) {
        break; // the user typed (or chose a mode) before the extension answered: keep theirs
      }
      const saved = vscode.getState() as Partial<SavedState> | undefined;
      modeSelect.value = saved?.mode ?? message.mode;
      input.value = saved?.query ?? message.query;
      if (input.value.trim() !== '') {
        searchNow();
      }
      break;
    }
    case 'setQuery':
      input.value = message.query;
      input.focus();
      searchNow();
      break;
    case 'results':
      if (message.seq !== seq) {
        return; // an answer to a query the user has already changed
      }
      render(message.groups);
      if (message.empty !== undefined) {
        summary.textContent = message.empty.text;
        summary.dataset.empty = message.empty.kind;
      } else {
        summary.textContent = message.summary;
        delete summary.dataset.empty;
      }
      if (message.refreshed === true) {
        summary.dataset.refreshed = String(Number(summary.dataset.refreshed ?? '0') + 1);
      }
      showNotice(message.notice);
      coverage.textContent = message.coverage ?? '';
      coverage.hidden = message.coverage === undefined;
      break;
    case 'error':
      if (message.seq !== seq) {
        return;
      }
      list.replaceChildren();
      summary.textContent = '';
      delete summary.dataset.empty;
      coverage.hidden = true;
      showNotice(message.message);
      break;
    case 'status':
      element<HTMLDivElement>('status').textContent = message.text;
      break;
  }
});

input.addEventListener('input', () => {
  touched = true;
  searchSoon();
});
input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter') {
    touched = true;
    searchNow();
  }
});
modeSelect.addEventListener('change', () => {
  touched = true;
  searchNow();
});
window.addEventListener('focus', () => input.focus());

vscode.postMessage({ type: 'ready' });
