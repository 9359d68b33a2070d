// Generates src/generated/protocol.d.ts, the wire types, from protocol/schema.json with
// json-schema-to-typescript. Run by `npm run build` (and so by `vscode:prepublish` and the
// tests): the types are always derived from the contract, never copied by hand.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compile } from 'json-schema-to-typescript';

const here = dirname(fileURLToPath(import.meta.url));
const schemaPath = join(here, '..', '..', '..', 'protocol', 'schema.json');
const outPath = join(here, '..', 'src', 'generated', 'protocol.d.ts');
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));

/** A `$ref` with a description beside it would become a new type (`Range1`, `Range2`…) equal
 * to the one referenced: keep the reference alone, so every use names the same type. */
function bareRefs(node) {
  if (Array.isArray(node)) return node.map(bareRefs);
  if (node === null || typeof node !== 'object') return node;
  if (typeof node.$ref === 'string' && Object.keys(node).every((key) => ['$ref', 'description', '$comment'].includes(key))) {
    return { $ref: node.$ref };
  }
  return Object.fromEntries(Object.entries(node).map(([key, value]) => [key, bareRefs(value)]));
}

// The schema is a set of $defs, not one root type: a root that references every definition
// makes each one a named, exported type (the $defs key is its name).
const root = {
  title: 'Protocol',
  type: 'object',
  additionalProperties: false,
  $defs: bareRefs(schema.$defs),
  properties: Object.fromEntries(Object.keys(schema.$defs).map((name) => [name, { $ref: `#/$defs/${name}` }])),
};
const types = await compile(root, 'Protocol', {
  bannerComment: '// Generated from protocol/schema.json by scripts/generate-types.mjs: do not edit.',
  additionalProperties: false,
  // maxItems bounds are checked by the server; as tuples they would only bloat the types.
  ignoreMinAndMaxItems: true,
  strictIndexSignatures: true,
  format: false,
});
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(outPath, types);
