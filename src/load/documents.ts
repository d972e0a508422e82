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
export function dropNulls(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(dropNulls);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== null) out[k] = dropNulls(v);
    return out;
  }
  return value;
}

/** The value of a JSON list item that turned out not to be valid JSON. */
export class InvalidJson {
  constructor(readonly message: string) {}
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Above this size, invalid JSON is not re-read by the YAML parser (about 70 times the text in memory). */
const YAML_FALLBACK_BYTES = 8 * 1024 * 1024;

/**
 * Parses all documents of `text` (a string, or the bytes of a file). Broken documents become
 * `invalid-yaml` diagnostics. The documents of a JSON list are parsed one by one as they are
 * read: iterate them once.
 */
export function splitDocuments(input: string | Buffer, file: string): { docs: Iterable<RawDocument>; diagnostics: Diagnostic[] } {
  if (looksLikeJson(input)) {
    const bytes = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
    const fast = splitJson(bytes, file);
    if (fast) return { docs: fast, diagnostics: [] };
    // Not valid JSON: the YAML parser says where it breaks (or reads what JSON.parse would
    // not), unless the text is too big for it; then JSON.parse's own message has to do.
    if (bytes.length > YAML_FALLBACK_BYTES) {
      let message = 'not valid JSON';
      try {
        JSON.parse(bytes.toString('utf8'));
      } catch (e) {
        message = (e as Error).message;
      }
      return { docs: [], diagnostics: [{ severity: 'error', code: 'invalid-json', message: `invalid JSON: ${message}`, file }] };
    }
  }
  const text = typeof input === 'string' ? input : input.toString('utf8');
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

const WS = new Uint8Array(256);
for (const c of [0x20, 0x0a, 0x0d, 0x09]) WS[c] = 1;

function firstNonSpace(b: Uint8Array): number {
  let i = 0;
  // A UTF-8 byte order mark.
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) i = 3;
  while (i < b.length && WS[b[i]] === 1) i++;
  return i;
}

/** JSON (an object or an array at the top) rather than YAML block syntax. */
export function looksLikeJson(text: string | Uint8Array): boolean {
  if (typeof text === 'string') {
    const m = /^\uFEFF?\s*([{[])/.exec(text);
    return m !== null;
  }
  const c = text[firstNonSpace(text)];
  return c === 0x7b /* { */ || c === 0x5b; /* [ */
}

/** Go's meaning of null (absent) on a value JSON.parse just made: null keys are deleted in place. */
function dropNullsInPlace(value: unknown): unknown {
  if (Array.isArray(value)) {
    for (const v of value) if (v !== null && typeof v === 'object') dropNullsInPlace(v);
  } else if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    for (const k in o) {
      const v = o[k];
      if (v === null) delete o[k];
      else if (typeof v === 'object') dropNullsInPlace(v);
    }
  }
  return value;
}

/** A field's line in a JSON object that starts at `line`: re-read that object with the YAML parser. */
function lazyJsonLocator(bytes: Uint8Array, start: number, end: number, line: number): RawDocument['locate'] {
  let tree: { contents: unknown; lc: LineCounter } | undefined | null;
  return (path) => {
    if (path.length === 0) return line;
    if (tree === undefined) {
      const lc = new LineCounter();
      const doc = parseDocument(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('utf8'), { lineCounter: lc });
      tree = doc.errors.length > 0 ? null : { contents: doc.contents, lc };
    }
    if (tree === null) return line;
    const { contents, lc } = tree;
    return locateIn(contents, line, path, (off) => line + lc.linePos(off).line - 1);
  };
}

// Byte classes for the scan: 0 is anything the scan can skip in a tight loop.
const QUOTE = 1;
const OPEN = 2;
const CLOSE = 3;
const COMMA = 4;
const CLASS = new Uint8Array(256);
CLASS[0x22] = QUOTE;
CLASS[0x7b] = OPEN;
CLASS[0x5b] = OPEN;
CLASS[0x7d] = CLOSE;
CLASS[0x5d] = CLOSE;
CLASS[0x2c] = COMMA;

/**
 * One pass over the bytes of a JSON object: the [start, end) spans of the object elements of
 * its top-level `"items"` array, and where that array opens and closes. Strings are skipped
 * with indexOf and everything else but brackets and commas in a tight loop, so the cost is in
 * the structure, not in the text. Undefined when `items` holds anything but objects (the
 * caller then parses the file whole).
 */
function scanItems(b: Buffer): { spans: Uint32Array; count: number; open: number; close: number } | undefined {
  const n = b.length;
  let spans = new Uint32Array(1024);
  let count = 0;
  let depth = 0;
  let open = -1;
  let close = -1;
  let itemStart = -1;
  let sawItem = false;
  let keyStart = -1;
  let keyEnd = -1;
  let i = firstNonSpace(b);
  while (i < n) {
    while (i < n && CLASS[b[i]] === 0) i++;
    if (i >= n) break;
    const cls = CLASS[b[i]];
    if (cls === QUOTE) {
      let q = i;
      for (;;) {
        q = b.indexOf(0x22, q + 1);
        if (q === -1) return undefined;
        let bs = 0;
        for (let k = q - 1; b[k] === 0x5c; k--) bs++;
        if (bs % 2 === 0) break;
      }
      if (depth === 1) {
        keyStart = i + 1;
        keyEnd = q;
      } else if (depth === 2 && open !== -1 && close === -1) {
        return undefined; // a string item
      }
      i = q + 1;
      continue;
    }
    if (cls === OPEN) {
      if (depth === 1 && b[i] === 0x5b && open === -1 && keyEnd - keyStart === 5 && b.toString('latin1', keyStart, keyEnd) === 'items') {
        open = i;
      } else if (depth === 2 && open !== -1 && close === -1) {
        if (b[i] !== 0x7b) return undefined; // a nested list as an item
        itemStart = i;
        sawItem = true;
      }
      depth++;
    } else if (cls === CLOSE) {
      depth--;
      if (depth === 2 && itemStart !== -1 && close === -1) {
        if (count * 2 + 2 > spans.length) {
          const bigger = new Uint32Array(spans.length * 2);
          bigger.set(spans);
          spans = bigger;
        }
        spans[count * 2] = itemStart;
        spans[count * 2 + 1] = i + 1;
        count++;
        itemStart = -1;
      } else if (depth === 1 && open !== -1 && close === -1) {
        if (count > 0 && !sawItem) return undefined; // a scalar after the last comma
        close = i;
      }
    } else if (cls === COMMA) {
      if (depth === 2 && open !== -1 && close === -1) {
        if (!sawItem) return undefined; // a number, true, false or null item
        sawItem = false;
      }
      if (depth === 1) keyEnd = keyStart = -1;
    }
    i++;
  }
  return open === -1 || close === -1 ? undefined : { spans, count, open, close };
}

/** Line numbers for byte offsets that only grow: counts newlines once over the whole text. */
function lineCursor(b: Uint8Array): (offset: number) => number {
  let pos = 0;
  let line = 1;
  return (offset) => {
    for (let i = b.indexOf(0x0a, pos); i !== -1 && i < offset; i = b.indexOf(0x0a, i + 1)) line++;
    pos = Math.max(pos, offset);
    return line;
  };
}

function parseJson(b: Buffer, start: number, end: number): unknown {
  return JSON.parse(b.toString('utf8', start, end)) as unknown;
}

/**
 * A JSON file's documents: the items of a list one by one (each parsed when the caller gets to
 * it, so a dump of 100k pods never exists as one tree), or the whole file as one document.
 * Undefined when the text is not valid JSON (the YAML parser then says where it breaks).
 */
function splitJson(b: Buffer, file: string): Iterable<RawDocument> | undefined {
  const start = firstNonSpace(b);
  const scan = b[start] === 0x7b ? scanItems(b) : undefined;
  const whole = (): RawDocument[] | undefined => {
    let value: unknown;
    try {
      value = dropNullsInPlace(parseJson(b, 0, b.length));
    } catch {
      return undefined;
    }
    const line = lineCursor(b)(start);
    const list = listOf(value);
    if (list) return list.items.map((item) => ({ value: withDefaults(item, list.defaults), file, line, locate: () => line }));
    return [{ value, file, line, locate: lazyJsonLocator(b, start, b.length, line) }];
  };
  if (!scan || scan.count === 0) return whole();
  // The envelope without its items says what the list is (`kind` may come after `items`).
  let envelope: unknown;
  try {
    envelope = JSON.parse(`${b.toString('utf8', 0, scan.open + 1)}${b.toString('utf8', scan.close)}`) as unknown;
  } catch {
    return undefined;
  }
  const list = listOf({ ...(isPlainObject(envelope) ? envelope : {}), items: [] });
  if (!list) return whole();
  // Items are parsed one at a time as the caller iterates (and dropped when it moves on); one
  // that is not valid JSON reads as an InvalidJson value.
  return itemDocuments(b, scan.spans, scan.count, list.defaults, file);
}

function* itemDocuments(b: Buffer, spans: Uint32Array, count: number, defaults: ItemDefaults | undefined, file: string): Generator<RawDocument> {
  const lineAt = lineCursor(b);
  for (let k = 0; k < count; k++) {
    const s = spans[k * 2];
    const e = spans[k * 2 + 1];
    const line = lineAt(s);
    let value: unknown;
    try {
      value = withDefaults(dropNullsInPlace(parseJson(b, s, e)), defaults);
    } catch (err) {
      value = new InvalidJson((err as Error).message);
    }
    yield { value, file, line, locate: lazyJsonLocator(b, s, e, line) };
  }
}
