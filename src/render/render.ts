// The renderer: desired state → one node's `inet weir` table, as one Ruleset that the applier
// turns into one transaction. Pure: no I/O, no clock, no randomness; equal inputs give equal
// rulesets. The table is the sum of its sections (table.ts); each is a file of its own:
//
//   filter.ts   the policy filter: engine verdicts for this node's pods (hook forward)
//   services.ts service NAT: Services → DNAT to weighted endpoints (hooks prerouting, output)
//
// Element updates of either use the same fast path (elements.ts).

import { policyFilterSection, type RenderInput } from './filter.js';
import { collectReasons } from './reasons.js';
import type { Ruleset } from './ruleset.js';
import { servicesSection, type ServicesInput } from './services.js';
import { renderTable, type Section } from './table.js';

export { namedEgress, patchPods, policyFilterSection, sourceChainName, spoofCheckedPerPacket, DENIED_SET, EGRESS_MAP, INGRESS_MAP, EGRESS_POD_MAP, INGRESS_POD_MAP, UNTRACKED_CHAIN, IDENTITY_MARK_BASE, FORWARD_CHAIN, INGRESS_CHAIN, type LocalPod, type RenderInput, type RenderReuse, type PodDelta, type PodPatchContext } from './filter.js';

/** Renders one node's table: every section into one ruleset (one transaction). */
export function renderRuleset(input: RenderInput & { readonly services?: ServicesInput }): Ruleset {
  const reasons = input.reasons ?? collectReasons(input.engine);
  const sections: Section[] = [policyFilterSection({ ...input, reasons, snat: input.services !== undefined })];
  if (input.services) sections.push(servicesSection(input.services));
  return renderTable(sections, reasons.table);
}
