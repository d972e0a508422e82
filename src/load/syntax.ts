// Kubernetes name syntax (apimachinery pkg/util/validation), used by the schemas.
// Each check returns undefined when valid, else a message phrased like the API server's.

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Label keys are qualified names: "an optional prefix and name, separated by a slash (/).
 * The name segment is required and must be 63 characters or less, beginning and ending with
 * an alphanumeric character with dashes, underscores, dots, and alphanumerics between. The
 * prefix is optional. If specified, the prefix must be a DNS subdomain."
 */
export function checkLabelKey(key: string): string | undefined {
  const parts = key.split('/');
  let name: string;
  if (parts.length === 1) {
    name = parts[0];
  } else if (parts.length === 2) {
    const prefix = parts[0];
    name = parts[1];
    if (prefix.length === 0) return `invalid label key "${key}": prefix part must be non-empty`;
    if (prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix)) {
      return `invalid label key "${key}": prefix part must be a lowercase DNS subdomain (e.g. example.com)`;
    }
  } else {
    return `invalid label key "${key}": a qualified name may contain at most one "/"`;
  }
  if (name.length === 0) return `invalid label key "${key}": name part must be non-empty`;
  if (name.length > 63) return `invalid label key "${key}": name part must be no more than 63 characters`;
  if (!QUALIFIED_NAME.test(name)) {
    return `invalid label key "${key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

/** "must be 63 characters or less (can be empty), unless empty, must begin and end with an alphanumeric character". */
export function checkLabelValue(value: string): string | undefined {
  if (value.length > 63) return `invalid label value "${value}": must be no more than 63 characters`;
  if (!LABEL_VALUE.test(value)) {
    return `invalid label value "${value}": must be empty or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;
  }
  return undefined;
}

/**
 * IANA_SVC_NAME (RFC 6335), what a named port must be: at most 15 characters, lowercase
 * letters, digits and '-', at least one letter, no leading, trailing or doubled '-'.
 */
export function checkPortName(name: string): string | undefined {
  const bad = (why: string) => `invalid port name "${name}": ${why}`;
  if (name.length === 0) return bad('must not be empty');
  if (name.length > 15) return bad('must be no more than 15 characters');
  if (!/^[-a-z0-9]+$/.test(name)) return bad("must contain only lowercase alphanumeric characters or '-'");
  if (!/[a-z]/.test(name)) return bad('must contain at least one letter');
  if (name.includes('--')) return bad("must not contain consecutive hyphens");
  if (name.startsWith('-') || name.endsWith('-')) return bad("must not begin or end with a hyphen");
  return undefined;
}

export function checkPortNumber(port: number): string | undefined {
  return Number.isInteger(port) && port >= 1 && port <= 65535 ? undefined : `port ${port} is out of range (must be 1-65535)`;
}

/** Object names of namespaces and most kinds are DNS-1123 labels or subdomains. */
export function checkNamespaceName(name: string): string | undefined {
  return name.length <= 63 && DNS1123_LABEL.test(name)
    ? undefined
    : `invalid namespace name "${name}": must be a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63 characters)`;
}

export function checkObjectName(name: string): string | undefined {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name)
    ? undefined
    : `invalid name "${name}": must be a lowercase RFC 1123 subdomain (a-z, 0-9, '-', '.', at most 253 characters)`;
}
