// weir lab: emulated nodes and pods as network namespaces, real servers, real probes.
// See README.md in this folder for the topology, the state file and the agent hooks.

export { labUp, labDown, labStatus, labExec, labApply, addPod, removePod, updatePodLabels, targetNetns } from './lab.js';
export type { LabHooks, LabChange, LabUpOptions, LabDownOptions, LabDownResult, LabStatus, LabApplyResult } from './lab.js';
export { probe, parsePortSpec, portLabel, reachabilityMatrix, formatReachability, formatProbeSummary, EXTERNAL_PEER } from './probe.js';
export type { ProbeOptions, ProbeResult, ProbeCell, PortSpec } from './probe.js';
export { planLab, LAB_DEFAULTS, servedPorts } from './plan.js';
export type { LabPlan, LabPlanOptions } from './plan.js';
export { readState, statePath, labStateSchema, STATE_FILE } from './state.js';
export type { LabState, LabNode, LabPod, LabExternal, LabPort } from './state.js';
export { run, runInNetns, CommandError } from '../exec/run.js';
export type { ExecResult, RunOptions } from '../exec/run.js';
export { preflight, preflightDiagnostics } from './preflight.js';
export { DEFAULT_PREFIX, DEFAULT_LAB_DIR, defaultLabDir, podKey } from './names.js';
export { upstreamE2eCluster } from './model.js';
export type { E2eModelOptions } from './model.js';
