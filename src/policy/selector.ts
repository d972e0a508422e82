// metav1.LabelSelector semantics.
//
// "The requirements are ANDed." — matchLabels is a map of {key,value} pairs, each equivalent
// to an `In` requirement with a single value. An empty selector (no requirements) matches
// every object; the caller decides what an *absent* selector means, because that differs by
// field (absent namespaceSelector in a NetworkPolicyPeer means "the policy's namespace").

import type { LabelSelector, Labels } from '../model/cluster.js';

export function matchesSelector(sel: LabelSelector, labels: Labels): boolean {
  if (sel.matchLabels) {
    for (const k in sel.matchLabels) if (labels[k] !== sel.matchLabels[k]) return false;
  }
  if (sel.matchExpressions) {
    for (const req of sel.matchExpressions) {
      const has = Object.prototype.hasOwnProperty.call(labels, req.key);
      const values = req.values ?? [];
      switch (req.operator) {
        case 'In':
          if (!has || !values.includes(labels[req.key])) return false;
          break;
        case 'NotIn':
          // "NotIn: the label key is absent, or its value is not in the set".
          if (has && values.includes(labels[req.key])) return false;
          break;
        case 'Exists':
          if (!has) return false;
          break;
        case 'DoesNotExist':
          if (has) return false;
          break;
      }
    }
  }
  return true;
}

export function isEmptySelector(sel: LabelSelector): boolean {
  return (
    (!sel.matchLabels || Object.keys(sel.matchLabels).length === 0) &&
    (!sel.matchExpressions || sel.matchExpressions.length === 0)
  );
}

/** A canonical text for a selector: equal selectors get equal keys (the selector cache's key). */
export function selectorKey(sel: LabelSelector): string {
  const parts: string[] = [];
  const ml = sel.matchLabels ?? {};
  for (const k of Object.keys(ml).sort()) parts.push(`${k}=${ml[k]}`);
  const exprs = (sel.matchExpressions ?? [])
    .map((e) => `${e.key} ${e.operator} (${[...(e.values ?? [])].sort().join(',')})`)
    .sort();
  parts.push(...exprs);
  return parts.join(';');
}

/** Human text in kubectl style: `app=web,tier in (a,b)`, or `{}` for everything. */
export function formatSelector(sel: LabelSelector): string {
  const parts: string[] = [];
  const ml = sel.matchLabels ?? {};
  for (const k of Object.keys(ml).sort()) parts.push(`${k}=${ml[k]}`);
  for (const e of sel.matchExpressions ?? []) {
    const vals = (e.values ?? []).join(',');
    if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else parts.push(`${e.key} ${e.operator.toLowerCase()} (${vals})`);
  }
  return parts.length === 0 ? '{}' : parts.join(',');
}

export function labelsKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}
