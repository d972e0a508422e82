// The analyzer as a library: connectivity lists in several formats, and policy lint.
export { connectivityList, explainLine, lineText, connText, unknownText, FocusNotFoundError, type UnknownConns, type ConnLine, type ConnNode, type ConnListOptions, type LineExplanation, type Reason } from './connlist.js';
export { renderConnList, renderTxt, renderJson, renderCsv, renderMd, renderDot, OUTPUT_FORMATS, isOutputFormat, type OutputFormat } from './formats.js';
export { lint, compareFindings, summarize, renderFindings, summaryText, LINT_CODES, LINT_FORMATS, type Finding, type LintCode, type LintFormat, type LintSummary } from './lint.js';
export { diffConnectivity, diffLineText, DIFF_TYPES, type ConnectivityDiff, type DiffLine, type DiffType, type DiffOptions } from './diff.js';
export { renderDiff, DIFF_FORMATS, type DiffFormat } from './diff-formats.js';
export { exposure, renderExposureTxt, renderExposureMd, exposureJson, ENTIRE_CLUSTER, type ExposureLine, type ExposureResult } from './exposure.js';
export { escapeControl, escapeText, escapeJson } from './escape.js';
