// The kernel data plane: engine verdicts → one `inet weir` table per node, applied atomically.
export { renderRuleset, DENIED_SET, EGRESS_MAP, INGRESS_MAP, EGRESS_CHAIN, INGRESS_CHAIN, type LocalPod, type RenderInput } from './render.js';
export { fullScript, diffScript, type DiffSummary, type PartialScript } from './script.js';
export { rulesetStats, elementKey, type Ruleset, type NftSet, type NftChain, type RulesetStats } from './ruleset.js';
export { collectReasons, ReasonRegistry, DEFAULT_DENY_RULE, type Reason, type ReasonsTable, type ReasonVerdict } from './reasons.js';
export { Applier, nftRunner, type ApplyResult, type NftRunner, type NftRunResult } from './apply.js';
export {
  NodeAgent,
  runAgent,
  readAgentStatus,
  reconcileEngine,
  clusterFromLab,
  localPodsOf,
  labEnforcer,
  statusFile,
  REASONS_FILE,
  DESIRED_FILE,
  DESIRED_DIR,
  type AgentStatus,
  type NodeAgentOptions,
  type RunAgentOptions,
} from './agent.js';
export { sweepConntrack, parseConntrack, flowAllowed, type ConntrackEntry } from './conntrack.js';
export { TABLE, FAMILY, nftName } from './names.js';
