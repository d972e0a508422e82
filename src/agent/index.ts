// The node agent: desired state → engine → renderer → applier, plus the status it publishes.
export { NodeAgent, type AgentBatch, type NodeAgentOptions } from './agent.js';
export { agentStatusSchema, readAgentStatus, writeAgentStatus, statusFile, REASONS_FILE, type AgentStatus } from './status.js';
export { sweepConntrack, parseConntrack, flowAllowed, type ConntrackEntry } from './conntrack.js';
