// The analyzer as a library: connectivity lists in several formats, and policy lint.
export { connectivityList, explainLine, lineText, FocusNotFoundError, type ConnLine, type ConnNode, type ConnListOptions, type LineExplanation, type Reason } from './connlist.js';
export { renderConnList, renderTxt, renderJson, renderCsv, renderMd, renderDot, OUTPUT_FORMATS, isOutputFormat, type OutputFormat } from './formats.js';
export { lint, compareFindings, summarize, renderFindings, summaryText, LINT_CODES, LINT_FORMATS, type Finding, type LintCode, type LintFormat, type LintSummary } from './lint.js';
