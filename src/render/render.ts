// The renderer: desired state → one node's `inet weir` table, as one Ruleset that the applier
// turns into one transaction. Pure: no I/O, no clock, no randomness; equal inputs give equal
// rulesets. The table is the sum of its sections (table.ts); each is a file of its own:
//
//   filter.ts   the policy filter: engine verdicts for this node's pods (hook forward)
//
// A new section (service NAT) is one more entry below, and its element updates use the same
// fast path (elements.ts).

import { policyFilterSection, type RenderInput } from './filter.js';
import { collectReasons } from './reasons.js';
import type { Ruleset } from './ruleset.js';
import { renderTable } from './table.js';

export { namedEgress, patchPods, policyFilterSection, DENIED_SET, EGRESS_MAP, INGRESS_MAP, EGRESS_CHAIN, INGRESS_CHAIN, type LocalPod, type RenderInput, type PodDelta, type PodPatchContext } from './filter.js';

/** Renders one node's table: every section into one ruleset (one transaction). */
export function renderRuleset(input: RenderInput): Ruleset {
  const reasons = input.reasons ?? collectReasons(input.engine);
  return renderTable([policyFilterSection({ ...input, reasons })], reasons.table);
}
