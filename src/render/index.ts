// The renderer: engine verdicts → the desired state of one node's `inet weir` table, and that
// state → nft script text (full, diff, patch). Pure: no I/O, unit-tested without root.
export { renderRuleset, EGRESS_MAP, INGRESS_MAP, EGRESS_POD_MAP, INGRESS_POD_MAP, IDENTITY_MARK_BASE, FORWARD_CHAIN, INGRESS_CHAIN, type LocalPod, type RenderInput } from './render.js';
export { fullScript, diffScript, type DiffSummary, type PartialScript } from './script.js';
export { rulesetStats, elementKey, type Ruleset, type NftSet, type NftChain, type RulesetStats } from './ruleset.js';
export { collectReasons, ReasonRegistry, DEFAULT_DENY_RULE, type Reason, type ReasonsTable, type ReasonVerdict } from './reasons.js';
export { TABLE, FAMILY, nftName, DENIED_SET, HITS_SET } from './names.js';
export { renderTable, TableBuilder, type Section } from './table.js';
export { patchElements, hasElement, type ElementChange } from './elements.js';
export { IdentityChainCache } from './identity-chains.js';
export { policyFilterSection, patchPods, sourceChainName, spoofCheckedPerPacket, type PodPatchContext } from './render.js';
/** Typed nftables rules and elements (matches, statements, verdicts) and their nft syntax. */
export * as nft from './nft.js';
export { servicesSection, planServices, renderServices, serviceWeightPatch, decide as decideServices, SERVICE_PORTS_MAP, SERVICE_REJECT_MAP, type ServicesInput, type PortDecision } from './services.js';
export { LOCAL_IPS_SET, POD_CIDRS_SET, HOST_IN_CHAIN, HOST_OUT_CHAIN, type PolicyOnlyOptions } from './policy-only.js';
