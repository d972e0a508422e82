// How a Service spreads its connections, from its `weir.dev/` annotations.
//
//   weir.dev/balancing:         equal (default) | weighted | adaptive
//   weir.dev/weights:           "pod/web-0: 3, pod/web-1: 1"      per endpoint (pod name)
//                               "version=v1: 90, version=v2: 10"  per group (pod label)
//   weir.dev/locality:          prefer-local                      the client's own location first
//   weir.dev/location-split:    "eu-west: 90, us-east: 10"        share per location
//   weir.dev/allowed-locations: "eu-west, eu-central"             never anywhere else
//
// A balancing annotation with an invalid value is reported (naming the Service and the
// annotation) and ignored: the Service falls back to equal weights and keeps serving. The one
// exception is `allowed-locations`, a data-sovereignty fence: an invalid value there fences
// off *every* location (the Service rejects) rather than opening the fence, because sending
// data where it must not go cannot be undone and a rejected connection can.

import type { Service } from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';

export const ANNOTATION = {
  balancing: 'weir.dev/balancing',
  weights: 'weir.dev/weights',
  locality: 'weir.dev/locality',
  split: 'weir.dev/location-split',
  allowed: 'weir.dev/allowed-locations',
} as const;

const KNOWN = new Set<string>([...Object.values(ANNOTATION), 'weir.dev/mode']);

export type BalancingMode = 'equal' | 'weighted' | 'adaptive';

export type WeightTarget =
  | { readonly kind: 'pod'; readonly name: string }
  | { readonly kind: 'label'; readonly key: string; readonly value: string };

export interface WeightEntry {
  readonly target: WeightTarget;
  readonly weight: number;
  /** The entry as written, for messages. */
  readonly text: string;
}

export interface BalancingConfig {
  readonly mode: BalancingMode;
  /** Static weights; with `adaptive`, the capacity the controller's factors multiply. */
  readonly weights?: readonly WeightEntry[];
  readonly preferLocal: boolean;
  /** Share per location (relative integers). */
  readonly split?: ReadonlyMap<string, number>;
  /** When present, the only locations that may receive connections (possibly none). */
  readonly allowedLocations?: ReadonlySet<string>;
}

export const EQUAL: BalancingConfig = { mode: 'equal', preferLocal: false };

/** The largest weight accepted; kernel weights are scaled to a fixed total anyway. */
export const MAX_WEIGHT = 10000;

// A label value / location name: the Kubernetes label value syntax (63 characters).
const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const POD_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/;

export function parseBalancing(service: Service): { readonly config: BalancingConfig; readonly diagnostics: readonly Diagnostic[] } {
  const a = service.annotations;
  const diagnostics: Diagnostic[] = [];
  const report = (annotation: string, code: string, message: string, severity: Diagnostic['severity'] = 'warning'): void => {
    diagnostics.push({
      severity,
      code,
      message,
      object: objectName('Service', service.name, service.namespace),
      field: `metadata.annotations.${annotation}`,
      ...(service.source ? { file: service.source.file, ...(service.source.line !== undefined ? { line: service.source.line } : {}) } : {}),
    });
  };

  for (const key of Object.keys(a)) {
    if (key.startsWith('weir.dev/') && !KNOWN.has(key)) {
      report(key, 'lb-unknown-annotation', `unknown annotation "${key}" (misspelled?); known: ${Object.values(ANNOTATION).join(', ')}`);
    }
  }

  let mode: BalancingMode = 'equal';
  let modeInvalid = false;
  const modeText = a[ANNOTATION.balancing];
  if (modeText !== undefined) {
    if (modeText === 'equal' || modeText === 'weighted' || modeText === 'adaptive') mode = modeText;
    else modeInvalid = true;
    if (modeInvalid) report(ANNOTATION.balancing, 'lb-invalid-mode', `must be "equal", "weighted" or "adaptive", got "${modeText}"; equal weights are used`);
  }

  let weights: WeightEntry[] | undefined;
  const weightsText = a[ANNOTATION.weights];
  if (weightsText !== undefined) {
    const parsed = parseEntries(weightsText, (target) => parseTarget(target));
    if ('error' in parsed) {
      report(ANNOTATION.weights, 'lb-invalid-weights', `${parsed.error}; equal weights are used`);
      if (mode === 'weighted') mode = 'equal';
    } else if (parsed.entries.every((e) => e.weight === 0)) {
      report(ANNOTATION.weights, 'lb-invalid-weights', 'every weight is 0, which would drop all traffic; equal weights are used');
      if (mode === 'weighted') mode = 'equal';
    } else if (!modeInvalid) {
      weights = parsed.entries.map((e) => ({ target: e.key, weight: e.weight, text: e.text }));
      if (modeText === undefined) mode = 'weighted';
      else if (mode === 'equal') {
        report(ANNOTATION.weights, 'lb-conflicting-annotations', `${ANNOTATION.balancing} is "equal", so these weights are ignored`);
        weights = undefined;
      }
    }
  } else if (mode === 'weighted') {
    report(ANNOTATION.balancing, 'lb-missing-weights', `"weighted" needs the ${ANNOTATION.weights} annotation; equal weights are used`);
    mode = 'equal';
  }

  let preferLocal = false;
  const locality = a[ANNOTATION.locality];
  if (locality !== undefined) {
    if (locality === 'prefer-local') preferLocal = true;
    else if (locality !== 'any') report(ANNOTATION.locality, 'lb-invalid-locality', `must be "prefer-local" or "any", got "${locality}"; ignored`);
  }

  let split: Map<string, number> | undefined;
  const splitText = a[ANNOTATION.split];
  if (splitText !== undefined) {
    const parsed = parseEntries(splitText, (t) => (NAME.test(t) ? t : undefined));
    if ('error' in parsed) report(ANNOTATION.split, 'lb-invalid-split', `${parsed.error}; ignored`);
    else if (parsed.entries.every((e) => e.weight === 0)) report(ANNOTATION.split, 'lb-invalid-split', 'every share is 0; ignored');
    else split = new Map(parsed.entries.map((e) => [e.key, e.weight]));
  }
  if (split && preferLocal) {
    report(ANNOTATION.locality, 'lb-conflicting-annotations', `prefer-local and ${ANNOTATION.split} both given; the split applies and prefer-local is ignored`);
    preferLocal = false;
  }

  let allowedLocations: Set<string> | undefined;
  const allowedText = a[ANNOTATION.allowed];
  if (allowedText !== undefined) {
    const names = allowedText.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const bad = names.filter((n) => !NAME.test(n));
    if (names.length === 0 || bad.length > 0) {
      report(ANNOTATION.allowed, 'lb-invalid-allowed-locations',
        names.length === 0
          ? 'lists no location; no location is allowed and the Service rejects every connection (a sovereignty fence fails closed)'
          : `invalid location name ${bad.map((b) => `"${b}"`).join(', ')}; no location is allowed and the Service rejects every connection (a sovereignty fence fails closed)`,
        'error');
      allowedLocations = new Set();
    } else {
      allowedLocations = new Set(names);
    }
  }

  return {
    config: {
      mode,
      ...(weights ? { weights } : {}),
      preferLocal,
      ...(split ? { split } : {}),
      ...(allowedLocations ? { allowedLocations } : {}),
    },
    diagnostics,
  };
}

function parseTarget(text: string): WeightTarget | undefined {
  if (text.startsWith('pod/')) {
    const name = text.slice(4);
    return POD_NAME.test(name) ? { kind: 'pod', name } : undefined;
  }
  const eq = text.indexOf('=');
  if (eq <= 0) return undefined;
  const key = text.slice(0, eq);
  const value = text.slice(eq + 1);
  return LABEL_KEY.test(key) && (value === '' || NAME.test(value)) ? { kind: 'label', key, value } : undefined;
}

function parseEntries<K>(
  text: string,
  parseKey: (t: string) => K | undefined,
): { readonly entries: readonly { key: K; weight: number; text: string }[] } | { readonly error: string } {
  const entries: { key: K; weight: number; text: string }[] = [];
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) return { error: 'is empty' };
  for (const part of parts) {
    const colon = part.lastIndexOf(':');
    if (colon <= 0) return { error: `entry "${part}" is not "target: weight"` };
    const target = part.slice(0, colon).trim();
    const weightText = part.slice(colon + 1).trim();
    const key = parseKey(target);
    if (key === undefined) return { error: `entry "${part}": "${target}" is not a valid target (pod/NAME, LABEL=VALUE or a location name)` };
    if (!/^[0-9]+$/.test(weightText) || Number(weightText) > MAX_WEIGHT) {
      return { error: `entry "${part}": weight "${weightText}" must be an integer from 0 to ${MAX_WEIGHT}` };
    }
    if (entries.some((e) => e.text === target)) return { error: `entry "${target}" is given twice` };
    entries.push({ key, weight: Number(weightText), text: target });
  }
  return { entries };
}
