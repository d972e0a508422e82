// The renderer: engine verdicts → the desired state of one node's `inet weir` table, and that
// state → nft script text (full, diff, patch). Pure: no I/O, unit-tested without root.
export { renderRuleset, DENIED_SET, EGRESS_MAP, INGRESS_MAP, EGRESS_CHAIN, INGRESS_CHAIN, type LocalPod, type RenderInput } from './render.js';
export { fullScript, diffScript, type DiffSummary, type PartialScript } from './script.js';
export { rulesetStats, elementKey, type Ruleset, type NftSet, type NftChain, type RulesetStats } from './ruleset.js';
export { collectReasons, ReasonRegistry, DEFAULT_DENY_RULE, type Reason, type ReasonsTable, type ReasonVerdict } from './reasons.js';
export { TABLE, FAMILY, nftName } from './names.js';
