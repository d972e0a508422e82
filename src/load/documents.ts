// Splits manifest text into documents and keeps a way back to each field's line, so a
// problem found later by path (`spec.ingress[0].from[1]`) can be reported at its own line.
//
// YAML goes through the `yaml` parser, which keeps the node tree beside each value. JSON (what
// the API server and `kubectl get -o json` return) takes a fast path: the text is scanned once
// for the items of a list, each item is parsed with JSON.parse on its own, and a field's line
// is found only when a diagnostic asks for it (the item is then re-read with the YAML parser,
// JSON being YAML 1.2 flow syntax). A 100k-pod dump is read without a tree of its whole text.

import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments, parseDocument } from 'yaml';
import type { Diagnostic } from '../model/diagnostics.js';

export type PathSegment = string | number;

/** One manifest object (a document, or an item of a list) with its position. */
export interface RawDocument {
  readonly value: unknown;
  readonly file: string;
  /** 1-based line where the object starts. */
  readonly line: number;
  /** 1-based line of the field at `path` (relative to this object), or the nearest existing ancestor. */
  locate(path: readonly PropertyKey[]): number;
}

interface Ranged {
  readonly range?: readonly [number, number, number] | null;
}

function rangeStart(node: unknown): number | undefined {
  const r = (node as Ranged | null)?.range;
  return r ? r[0] : undefined;
}

/** Walks `path` down a YAML node tree; `lineOf` turns a node's offset into a file line. */
function locateIn(root: unknown, rootLine: number, path: readonly PropertyKey[], lineOf: (offset: number) => number): number {
  let node: unknown = root;
  let line = rootLine;
  const lineAt = (n: unknown): number | undefined => {
    const off = rangeStart(n);
    return off === undefined ? undefined : lineOf(off);
  };
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) break;
      line = lineAt(pair.key) ?? line;
      node = pair.value;
    } else if (isSeq(node) && typeof seg === 'number' && seg < node.items.length) {
      node = node.items[seg];
      line = lineAt(node) ?? line;
    } else {
      break;
    }
  }
  return line;
}

function makeLocator(root: unknown, rootLine: number, lc: LineCounter): RawDocument['locate'] {
  return (path) => locateIn(root, rootLine, path, (off) => lc.linePos(off).line);
}

/**
 * Go's JSON decoding treats an explicit null like an absent field (nil pointer, nil slice),
 * and YAML writes `ingress:` with no value as null. Dropping null-valued keys gives the same
 * meaning before validation.
 */
function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
    return out;
  }
  return value;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Parses all documents of `text`. Broken documents become `invalid-yaml` diagnostics. */
export function splitDocuments(text: string, file: string): { docs: RawDocument[]; diagnostics: Diagnostic[] } {
  if (looksLikeJson(text)) {
    const fast = splitJson(text, file);
    if (fast) return { docs: fast, diagnostics: [] };
    // Not valid JSON: the YAML parser says where it breaks (or reads what JSON.parse would not).
  }
  const lc = new LineCounter();
  const parsed = parseAllDocuments(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const docs: RawDocument[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const doc of parsed) {
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        diagnostics.push({
          severity: 'error',
          code: 'invalid-yaml',
          // prettyErrors appends a source excerpt after the first line; the line number says where.
          message: `invalid YAML: ${err.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`,
          file,
          line: err.linePos?.[0].line ?? lc.linePos(err.pos[0]).line,
        });
      }
      continue;
    }
    if (doc.contents === null) continue; // empty document, e.g. a trailing `---`
    const line = lc.linePos(rangeStart(doc.contents) ?? 0).line;
    let value: unknown;
    try {
      value = dropNulls(doc.toJS({ maxAliasCount: 100 }));
    } catch (e) {
      diagnostics.push({ severity: 'error', code: 'invalid-yaml', message: `invalid YAML: ${(e as Error).message}`, file, line });
      continue;
    }
    if (value === null || value === undefined) continue; // e.g. `---` followed by `---`
    expandYaml(value, doc.contents, line, lc, file, docs, undefined);
  }
  return { docs, diagnostics };
}

/** Defaults a list gives its items: a typed list (`PodList`) says what its items are. */
interface ItemDefaults {
  readonly apiVersion: string;
  readonly kind: string;
}

/**
 * `kind: List` and typed lists (`PodList`, `NetworkPolicyList`, ...) contribute their items.
 * The API server leaves `apiVersion` and `kind` out of the items of a typed list; they are
 * the list's own apiVersion and its kind without `List`. Items of `kind: List` keep their own.
 */
function listOf(value: unknown): { items: unknown[]; defaults?: ItemDefaults } | undefined {
  if (!isPlainObject(value) || typeof value.kind !== 'string' || !value.kind.endsWith('List') || !Array.isArray(value.items)) return undefined;
  if (value.kind === 'List' || value.kind.length <= 4 || typeof value.apiVersion !== 'string') return { items: value.items };
  return { items: value.items, defaults: { apiVersion: value.apiVersion, kind: value.kind.slice(0, -4) } };
}

function withDefaults(item: unknown, defaults: ItemDefaults | undefined): unknown {
  if (!defaults || !isPlainObject(item) || (item.apiVersion !== undefined && item.kind !== undefined)) return item;
  return { apiVersion: defaults.apiVersion, kind: defaults.kind, ...item };
}

function expandYaml(value: unknown, node: unknown, line: number, lc: LineCounter, file: string, out: RawDocument[], defaults: ItemDefaults | undefined): void {
  const locate = makeLocator(node, line, lc);
  const list = listOf(value);
  if (list) {
    const itemsNode = isMap(node) ? node.get('items', true) : undefined;
    list.items.forEach((item, i) => {
      const itemNode = isSeq(itemsNode) ? itemsNode.items[i] : undefined;
      expandYaml(item, itemNode, locate(['items', i]), lc, file, out, list.defaults);
    });
    return;
  }
  out.push({ value: withDefaults(value, defaults), file, line, locate });
}

// ------------------------------------------------------------------------- JSON

export function looksLikeJson(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0xfeff) continue;
    return c === 0x7b /* { */ || c === 0x5b; /* [ */
  }
  return false;
}

/** Line numbers for offsets that only grow: counts newlines once over the whole text. */
function lineCursor(text: string): (offset: number) => number {
  let pos = 0;
  let line = 1;
  return (offset) => {
    for (let i = text.indexOf('\n', pos); i !== -1 && i < offset; i = text.indexOf('\n', i + 1)) line++;
    pos = Math.max(pos, offset);
    return line;
  };
}

/** A field's line in a JSON object that starts at `line`: re-read that object with the YAML parser. */
function lazyJsonLocator(slice: string, line: number): RawDocument['locate'] {
  let tree: { contents: unknown; lc: LineCounter } | undefined | null;
  return (path) => {
    if (path.length === 0) return line;
    if (tree === undefined) {
      const lc = new LineCounter();
      const doc = parseDocument(slice, { lineCounter: lc });
      tree = doc.errors.length > 0 ? null : { contents: doc.contents, lc };
    }
    if (tree === null) return line;
    const { contents, lc } = tree;
    return locateIn(contents, line, path, (off) => line + lc.linePos(off).line - 1);
  };
}

/**
 * The spans of the top-level `"items"` array's elements when `text` is one JSON object; each
 * span is [start, end) in `text`. Undefined when there is no such array.
 */
function itemSpans(text: string): [number, number][] | undefined {
  let depth = 0;
  let i = 0;
  const n = text.length;
  let inItems = false;
  let itemStart = -1;
  let spans: [number, number][] | undefined;
  let lastKey: string | undefined;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      const start = i;
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q === -1) return undefined;
        let bs = 0;
        for (let k = q - 1; text.charCodeAt(k) === 0x5c; k--) bs++;
        i = q + 1;
        if (bs % 2 === 0) break;
      }
      if (depth === 1 && !inItems) lastKey = text.slice(start + 1, i - 1);
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (depth === 1 && c === 0x5b && lastKey === 'items' && spans === undefined) {
        inItems = true;
        spans = [];
      } else if (inItems && depth === 2 && itemStart === -1) {
        itemStart = i;
      }
      depth++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      depth--;
      if (inItems && depth === 2 && itemStart !== -1) {
        spans?.push([itemStart, i + 1]);
        itemStart = -1;
      } else if (inItems && depth === 1) {
        inItems = false;
      }
    } else if (inItems && depth === 2 && itemStart === -1 && c > 0x20 && c !== 0x2c /* , */) {
      // A scalar item (not an object): keep it as its own span up to the next , or ].
      let j = i;
      while (j < n && text.charCodeAt(j) !== 0x2c && text.charCodeAt(j) !== 0x5d) j++;
      spans?.push([i, j]);
      i = j;
      continue;
    } else if (depth === 1 && c === 0x3a /* : */) {
      // after a key
    } else if (depth === 1 && c === 0x2c) {
      lastKey = undefined;
    }
    i++;
  }
  return spans;
}

function splitJson(text: string, file: string): RawDocument[] | undefined {
  const spans = itemSpans(text);
  const lineAt = lineCursor(text);
  if (spans === undefined || spans.length === 0) {
    let value: unknown;
    try {
      value = JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
    const start = text.search(/\S/);
    const line = lineAt(start < 0 ? 0 : start);
    if (listOf(value)) {
      // An empty list, or one whose items the scan did not find: no items to locate.
      return (listOf(value)?.items ?? []).map((item) => ({ value: withDefaults(dropNulls(item), listOf(value)?.defaults), file, line, locate: () => line }));
    }
    return [{ value: dropNulls(value), file, line, locate: lazyJsonLocator(text, line) }];
  }
  // The envelope without its items says what the list is (`kind` may come after `items`).
  const first = spans[0][0];
  const last = spans[spans.length - 1][1];
  let envelope: unknown;
  try {
    envelope = JSON.parse(`${text.slice(0, first)}${text.slice(last)}`) as unknown;
  } catch {
    return undefined;
  }
  const list = listOf(envelope);
  if (!list) {
    // An object with an "items" array that is not a Kubernetes list: one document.
    try {
      const value = JSON.parse(text) as unknown;
      const line = lineAt(Math.max(0, text.search(/\S/)));
      return [{ value: dropNulls(value), file, line, locate: lazyJsonLocator(text, line) }];
    } catch {
      return undefined;
    }
  }
  const docs: RawDocument[] = [];
  for (const [s, e] of spans) {
    const slice = text.slice(s, e);
    let value: unknown;
    try {
      value = JSON.parse(slice) as unknown;
    } catch {
      return undefined;
    }
    const line = lineAt(s);
    docs.push({ value: withDefaults(dropNulls(value), list.defaults), file, line, locate: lazyJsonLocator(slice, line) });
  }
  return docs;
}
