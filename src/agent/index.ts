// The node agent: desired state → engine → renderer → applier, plus the status it publishes.
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
