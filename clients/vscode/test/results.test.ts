import * as assert from 'node:assert/strict';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { arrangeHits, fileLabel, groupByFile, HEADING_SEPARATOR, runsInOrder, targetRange, toViewHit, uniqueHits } from '../src/results';
import type { Hit } from '../src/lspExt';

const ws = pathToFileURL('/ws').toString();
const uri = (rel: string): string => pathToFileURL(`/ws/${rel}`).toString();

function hit(rel: string, line: number, score: number, extra: Partial<Hit> = {}): Hit {
  return {
    uri: uri(rel),
    range: { start: { line, character: 0 }, end: { line: line + 3, character: 0 } },
    score,
    headingPath: ['Top', `Section ${line}`],
    snippet: `snippet at ${line}`,
    language: 'markdown',
    ...extra,
  };
}

test('groups by file, files in order of their best hit, hits in server order', () => {
  const hits = [hit('b.md', 10, 0.9), hit('a.md', 5, 0.8), hit('b.md', 2, 0.7), hit('c.md', 0, 0.6), hit('a.md', 1, 0.5)];
  const groups = groupByFile(hits, [ws]);
  assert.deepEqual(groups.map((g) => g.label), ['b.md', 'a.md', 'c.md']);
  assert.deepEqual(groups[0]!.hits.map((h) => h.line), [11, 3]);
  assert.deepEqual(groups[1]!.hits.map((h) => h.line), [6, 2]);
  assert.equal(groups[0]!.hits[0]!.heading, `Top${HEADING_SEPARATOR}Section 10`);
  assert.deepEqual(groups[0]!.hits[0]!.range, hits[0]!.range);
});

test('rank order by default: the server\'s order and scores, consecutive hits of a file under one name', () => {
  const hits = [hit('b.md', 10, 0.9), hit('b.md', 2, 0.85), hit('a.md', 5, 0.8), hit('b.md', 4, 0.7), hit('c.md', 0, 0.6, { source: 'buffer' })];
  const runs = runsInOrder(hits, [ws]);
  assert.deepEqual(runs.map((g) => g.label), ['b.md', 'a.md', 'b.md', 'c.md']);
  const shown = runs.flatMap((g) => g.hits);
  assert.deepEqual(shown.map((h) => h.score), [0.9, 0.85, 0.8, 0.7, 0.6]); // never reordered
  assert.deepEqual(shown.map((h) => h.source), ['disk', 'disk', 'disk', 'disk', 'buffer']);
  assert.deepEqual(arrangeHits(hits, [ws], false), runs);
  assert.deepEqual(arrangeHits(hits, [ws], true).map((g) => g.label), ['b.md', 'a.md', 'c.md']);
});

test('repeats of one passage are listed once', () => {
  const hits = [hit('a.md', 1, 0.9), hit('b.md', 1, 0.8), hit('a.md', 1, 0.7), hit('a.md', 9, 0.6)];
  assert.deepEqual(uniqueHits(hits).map((h) => h.score), [0.9, 0.8, 0.6]);
});

test('empty result gives no groups', () => {
  assert.deepEqual(groupByFile([]), []);
});

test('labels: server path first, else relative to the folder, folder name when multi-root', () => {
  assert.equal(fileLabel({ uri: uri('docs/x.md'), path: 'docs/x.md' }, [ws]), 'docs/x.md');
  assert.equal(fileLabel({ uri: uri('docs/x.md') }, [ws]), 'docs/x.md');
  const other = pathToFileURL('/other').toString();
  assert.equal(fileLabel({ uri: uri('docs/x.md') }, [other, ws]), 'ws/docs/x.md');
  assert.equal(fileLabel({ uri: pathToFileURL('/elsewhere/y.md').toString() }, [ws]), '/elsewhere/y.md');
  assert.equal(fileLabel({ uri: 'untitled:Untitled-1' }, [ws]), 'untitled:Untitled-1');
});

test('highlights outside the snippet or overlapping are dropped, the rest sorted', () => {
  const h = hit('a.md', 0, 1, {
    snippet: 'rotate the keys',
    highlights: [
      { start: 11, length: 4 },
      { start: 0, length: 6 },
      { start: 2, length: 3 }, // overlaps the first
      { start: 14, length: 5 }, // runs past the end
      { start: -1, length: 2 },
    ],
  });
  const [group] = groupByFile([h]);
  assert.deepEqual(group!.hits[0]!.highlights, [
    { start: 0, length: 6 },
    { start: 11, length: 4 },
  ]);
});

test('a hit without headings has an empty heading', () => {
  const [group] = groupByFile([hit('a.md', 0, 1, { headingPath: [] })]);
  assert.equal(group!.hits[0]!.heading, '');
});

test('a hit points at the answer: its matchRange when sent, else its range', () => {
  const plain = hit('a.md', 10, 0.9);
  assert.deepEqual(targetRange(plain), plain.range);
  const matchRange = { start: { line: 12, character: 4 }, end: { line: 12, character: 40 } };
  const matched = { ...plain, matchRange } as Hit;
  assert.deepEqual(targetRange(matched), matchRange);
  assert.deepEqual(toViewHit(matched).range, matchRange);
  assert.equal(toViewHit(matched).line, 13);
  // A malformed matchRange (end before start) is ignored, not followed.
  const broken = { ...plain, matchRange: { start: { line: 12, character: 4 }, end: { line: 11, character: 0 } } } as Hit;
  assert.deepEqual(targetRange(broken), plain.range);
});
