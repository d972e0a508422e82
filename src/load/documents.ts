// Splits manifest text into documents and keeps the YAML node tree beside each value, so a
// problem found later by path (`spec.ingress[0].from[1]`) can be reported at its own line.
// JSON files go through the same parser: JSON is YAML 1.2 flow syntax.

import { LineCounter, isMap, isScalar, isSeq, parseAllDocuments } from 'yaml';
import type { Diagnostic } from '../model/diagnostics.js';

export type PathSegment = string | number;

/** One manifest object (a document, or an item of a `kind: List`) with its position. */
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

function makeLocator(root: unknown, rootLine: number, lc: LineCounter): RawDocument['locate'] {
  return (path) => {
    let node: unknown = root;
    let line = rootLine;
    const lineAt = (n: unknown): number | undefined => {
      const off = rangeStart(n);
      return off === undefined ? undefined : lc.linePos(off).line;
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
  };
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
    expand(value, doc.contents, line, lc, file, docs);
  }
  return { docs, diagnostics };
}

/** `kind: List` and typed lists (`PodList`, `NetworkPolicyList`, ...) contribute their items. */
function expand(value: unknown, node: unknown, line: number, lc: LineCounter, file: string, out: RawDocument[]): void {
  const locate = makeLocator(node, line, lc);
  if (isPlainObject(value) && typeof value.kind === 'string' && value.kind.endsWith('List') && Array.isArray(value.items)) {
    value.items.forEach((item, i) => {
      const itemLine = locate(['items', i]);
      const itemsNode = isMap(node) ? node.get('items', true) : undefined;
      const itemNode = isSeq(itemsNode) ? itemsNode.items[i] : undefined;
      expand(item, itemNode, itemLine, lc, file, out);
    });
    return;
  }
  out.push({ value, file, line, locate });
}
