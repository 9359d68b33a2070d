// Turning a `docs/search` result into what the search view shows. Presentation only: the
// server has already ranked the hits; this keeps its order. No `vscode` import.
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRange } from './messages';
import type { Hit, Range } from './lspExt';
import type { FileGroup, ViewHit } from './types';

export const HEADING_SEPARATOR = ' › ';

/**
 * Groups hits by file. Files come in the order of their best hit and hits keep the server's
 * order within a file, so the best result is still first on screen.
 */
export function groupByFile(hits: readonly Hit[], workspaceFolders: readonly string[] = []): FileGroup[] {
  const groups = new Map<string, FileGroup>();
  for (const hit of hits) {
    let group = groups.get(hit.uri);
    if (group === undefined) {
      group = { uri: hit.uri, label: fileLabel(hit, workspaceFolders), hits: [] };
      groups.set(hit.uri, group);
    }
    group.hits.push(toViewHit(hit));
  }
  return [...groups.values()];
}

/**
 * The hits in the server's order, consecutive hits of one file under one file name: the list
 * reads top-down best first, and its scores are the server's, in its order.
 */
export function runsInOrder(hits: readonly Hit[], workspaceFolders: readonly string[] = []): FileGroup[] {
  const runs: FileGroup[] = [];
  for (const hit of hits) {
    const last = runs.at(-1);
    if (last !== undefined && last.uri === hit.uri) {
      last.hits.push(toViewHit(hit));
    } else {
      runs.push({ uri: hit.uri, label: fileLabel(hit, workspaceFolders), hits: [toViewHit(hit)] });
    }
  }
  return runs;
}

/** The view's list: rank order (default), or grouped by file when the user asks for it. */
export function arrangeHits(hits: readonly Hit[], workspaceFolders: readonly string[], byFile: boolean): FileGroup[] {
  return byFile ? groupByFile(hits, workspaceFolders) : runsInOrder(hits, workspaceFolders);
}

/** Hits less repeats of one passage (same file and target line): a list shows each once. */
export function uniqueHits<T extends Hit>(hits: readonly T[]): T[] {
  const seen = new Set<string>();
  return hits.filter((hit) => {
    const key = `${hit.uri}#${targetRange(hit).start.line}`;
    if (seen.has(key)) {
      return false;
    }
    seen.add(key);
    return true;
  });
}

export function toViewHit(hit: Hit): ViewHit {
  const target = targetRange(hit);
  return {
    line: target.start.line + 1,
    range: target,
    heading: hit.headingPath.join(HEADING_SEPARATOR),
    snippet: hit.snippet,
    highlights: validHighlights(hit),
    score: hit.score,
    source: hit.source === 'buffer' ? 'buffer' : 'disk',
  };
}

/** What opening a hit selects: the best-matching sentence (`matchRange`) when the server sent a
 * well-formed one, else the whole range ("a hit points at the answer"). */
export function targetRange(hit: Hit): Range {
  return parseRange(hit.matchRange) ?? hit.range;
}

/** The server's workspace-relative `path` when it sends one; else the path under the
 * workspace folder holding the file (with the folder's name when there are several). */
export function fileLabel(hit: Pick<Hit, 'uri' | 'path'>, workspaceFolders: readonly string[] = []): string {
  const filePath = uriToPath(hit.uri);
  const multiRoot = workspaceFolders.length > 1;
  for (const folderUri of workspaceFolders) {
    const folder = uriToPath(folderUri);
    if (filePath === undefined || folder === undefined) {
      continue;
    }
    const rel = path.relative(folder, filePath);
    if (rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel)) {
      const shown = hit.path ?? rel.split(path.sep).join('/');
      return multiRoot ? `${path.basename(folder)}/${shown}` : shown;
    }
  }
  return hit.path ?? filePath ?? hit.uri;
}

/** Highlights inside the snippet only: the view must never slice outside it. */
function validHighlights(hit: Hit): ViewHit['highlights'] {
  const length = hit.snippet.length;
  return (hit.highlights ?? [])
    .filter((h) => Number.isInteger(h.start) && Number.isInteger(h.length) && h.start >= 0 && h.length > 0 && h.start + h.length <= length)
    .sort((a, b) => a.start - b.start)
    .filter((h, i, all) => i === 0 || h.start >= all[i - 1]!.start + all[i - 1]!.length);
}

function uriToPath(uri: string): string | undefined {
  try {
    return fileURLToPath(uri);
  } catch {
    return undefined;
  }
}
