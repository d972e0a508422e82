// The node agent: desired state → engine → renderer → applier, plus the status it publishes.
export { NodeAgent, type AgentBatch, type NodeAgentOptions } from './agent.js';
export { agentStatusSchema, readAgentStatus, writeAgentStatus, statusFile, REASONS_FILE, type AgentStatus } from './status.js';
export { sweepConntrack, parseConntrack, flowAllowed, type ConntrackEntry } from './conntrack.js';
export { LbLoop, parseBackends, countBackends, HealthTracker, type LbLoopOptions, type LbTarget, type ServiceRuntime } from './lb-loop.js';
export { readDrains, setDrain, readLbStatuses, writeLbStatus } from './lb-files.js';
export { serviceViews, lbNodeStatusSchema, serviceViewSchema, LB_DRAIN_FILE, lbStatusFile, type LbNodeStatus, type ServiceView } from './lb-status.js';
