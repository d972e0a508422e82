// Turns zod issues into weir Diagnostics: stable codes, dotted field paths, the field's line.

import type { z } from 'zod';
import type { Diagnostic, Severity } from '../model/diagnostics.js';
import type { RawDocument } from './documents.js';

/** `spec.ingress[0].from[1].ipBlock.cidr`; keys that are not identifiers are quoted: `labels["app.kubernetes.io/name"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      out += /^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? (out === '' ? s : `.${s}`) : `["${s}"]`;
    }
  }
  return out;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[seg];
  }
  return v;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  return `${typeof v} ${String(v)}`;
}

const EXPECTED: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'an integer',
  boolean: 'a boolean (true or false)',
  object: 'an object',
  array: 'a list',
  record: 'a map',
};

export interface IssueContext {
  readonly doc: RawDocument;
  readonly object?: string;
  readonly severity?: Severity;
}

export function issuesToDiagnostics(issues: readonly z.core.$ZodIssue[], ctx: IssueContext): Diagnostic[] {
  const out: Diagnostic[] = [];
  const base = { severity: ctx.severity ?? ('error' as Severity), file: ctx.doc.file, ...(ctx.object ? { object: ctx.object } : {}) };
  const push = (path: readonly PropertyKey[], code: string, message: string) => {
    const field = formatPath(path);
    out.push({ ...base, code, message, line: ctx.doc.locate(path), ...(field ? { field } : {}) });
  };
  for (const issue of issues) {
    const path = issue.path;
    const actual = valueAt(ctx.doc.value, path);
    switch (issue.code) {
      case 'custom': {
        const code = (issue.params as { code?: string } | undefined)?.code ?? 'invalid-value';
        push(path, code, issue.message);
        break;
      }
      case 'invalid_type':
        if (actual === undefined) push(path, 'missing-field', 'required field is missing');
        else push(path, 'invalid-type', `must be ${EXPECTED[issue.expected] ?? issue.expected}, got ${describe(actual)}`);
        break;
      case 'unrecognized_keys':
        for (const key of issue.keys) {
          push([...path, key], 'unknown-field', `unknown field "${key}" (misspelled, or indented at the wrong level?)`);
        }
        break;
      case 'invalid_value':
        if (actual === undefined) push(path, 'missing-field', 'required field is missing');
        else push(path, 'invalid-value', `must be ${issue.values.length === 1 ? JSON.stringify(issue.values[0]) : `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`}, got ${describe(actual)}`);
        break;
      case 'invalid_union':
        push(path, 'invalid-type', `must be a port number or a port name, got ${describe(actual)}`);
        break;
      case 'too_small':
      case 'too_big': {
        const bound = issue.code === 'too_small' ? issue.minimum : issue.maximum;
        const rel = issue.code === 'too_small' ? 'at least' : 'at most';
        let what: string;
        if (issue.origin === 'array') what = `must have ${rel} ${String(bound)} item(s)`;
        else if (issue.origin === 'string') what = `must be ${rel} ${String(bound)} character(s) long`;
        else what = `must be ${rel} ${String(bound)}`;
        const missingString = issue.origin === 'string' && actual === '';
        push(path, missingString ? 'missing-field' : 'out-of-range', missingString ? 'must not be empty' : what);
        break;
      }
      default:
        push(path, 'invalid-value', issue.message);
    }
  }
  return out;
}
