// Errors are values with context: every problem found in user input names where it is.

export type Severity = 'error' | 'warning' | 'notice';

export interface Diagnostic {
  readonly severity: Severity;
  /** Stable machine-readable code, e.g. `invalid-cidr`, `unknown-kind`, `policy-selects-nothing`. */
  readonly code: string;
  readonly message: string;
  readonly file?: string;
  readonly line?: number;
  /** `Kind namespace/name` or `Kind name`. */
  readonly object?: string;
  /** Dotted path of the offending field, e.g. `spec.ingress[0].from[1].ipBlock.cidr`. */
  readonly field?: string;
}

/** Thrown where a diagnostic must stop the current operation (the CLI prints it, never a stack). */
export class ValidationError extends Error {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    super(diagnostics.map(formatDiagnostic).join('\n'));
    this.name = 'ValidationError';
    this.diagnostics = diagnostics;
  }
}

export function objectName(kind: string, name: string, namespace?: string): string {
  return namespace ? `${kind} ${namespace}/${name}` : `${kind} ${name}`;
}

/** `file:line: error: Kind ns/name: field: message [code]` */
export function formatDiagnostic(d: Diagnostic): string {
  const where = d.file ? `${d.file}${d.line !== undefined ? `:${d.line}` : ''}: ` : '';
  const obj = d.object ? `${d.object}: ` : '';
  const field = d.field ? `${d.field}: ` : '';
  return `${where}${d.severity}: ${obj}${field}${d.message} [${d.code}]`;
}

export function hasErrors(diags: readonly Diagnostic[]): boolean {
  return diags.some((d) => d.severity === 'error');
}
