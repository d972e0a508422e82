// One connectivity list, several renderings (after np-guard's netpol-analyzer, so outputs can
// be diffed against it): txt, json, csv, md and dot.

import { escapeControl, escapeJson } from './escape.js';
import { connText, lineText, type ConnLine, type ConnNode, type LineExplanation, type Reason, type UnknownConns } from './connlist.js';

export const OUTPUT_FORMATS = ['txt', 'json', 'csv', 'md', 'dot'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export function isOutputFormat(s: string): s is OutputFormat {
  return (OUTPUT_FORMATS as readonly string[]).includes(s);
}

function reasonsText(rs: readonly Reason[]): string {
  return rs.length === 0 ? 'nothing (no rule recorded)' : rs.map((r) => r.text).join('; ');
}

function explanationLines(l: ConnLine, e: LineExplanation, indent: string): string[] {
  const out = [`${indent}egress:  ${reasonsText(e.egress)}`, `${indent}ingress: ${reasonsText(e.ingress)}`];
  if (l.unknown) out.push(`${indent}unknown: ${l.unknown.conn}, because of the invalid ${l.unknown.reasons.join('; ')}`);
  return out;
}

/** `SRC => DST : CONNS`, one line per connection; with explanations, two indented lines each. */
export function renderTxt(lines: readonly ConnLine[]): string {
  const out: string[] = [];
  for (const l of lines) {
    out.push(escapeControl(lineText(l)));
    if (l.explanation) out.push(...explanationLines(l, l.explanation, '    ').map(escapeControl));
  }
  return out.length ? `${out.join('\n')}\n` : '';
}

interface JsonLine {
  src: string;
  dst: string;
  conn: string;
  /** Connections a policy in doubt could change: the verdict is UNKNOWN for them. */
  unknown?: { conn: string; reasons: readonly string[] };
  explanation?: LineExplanation;
}

function unknownJson(u: UnknownConns): { conn: string; reasons: readonly string[] } {
  return { conn: u.conn, reasons: u.reasons };
}

export function renderJson(lines: readonly ConnLine[]): string {
  const out = lines.map((l): JsonLine => {
    const j: JsonLine = { src: l.src.name, dst: l.dst.name, conn: l.conn };
    if (l.unknown) j.unknown = unknownJson(l.unknown);
    if (l.explanation) j.explanation = l.explanation;
    return j;
  });
  return escapeJson(`${JSON.stringify(out, null, 2)}\n`);
}

/** RFC 4180 quoting: fields with a comma, quote or newline are quoted, quotes doubled. */
function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function renderCsv(lines: readonly ConnLine[]): string {
  const explain = lines.some((l) => l.explanation);
  const header = explain ? ['src', 'dst', 'conn', 'egress', 'ingress'] : ['src', 'dst', 'conn'];
  const rows = [header.join(',')];
  for (const l of lines) {
    const fields = [l.src.name, l.dst.name, connText(l)];
    if (explain && l.explanation) fields.push(reasonsText(l.explanation.egress), reasonsText(l.explanation.ingress));
    rows.push(fields.map((f) => csvField(escapeControl(f))).join(','));
  }
  return `${rows.join('\n')}\n`;
}

function mdCell(s: string): string {
  return escapeControl(s).replace(/\|/g, '\\|');
}

export function renderMd(lines: readonly ConnLine[]): string {
  const explain = lines.some((l) => l.explanation);
  const rows = explain
    ? ['| src | dst | conn | egress | ingress |', '|-----|-----|------|--------|---------|']
    : ['| src | dst | conn |', '|-----|-----|------|'];
  for (const l of lines) {
    const cells = [l.src.name, l.dst.name, connText(l)];
    if (explain && l.explanation) cells.push(reasonsText(l.explanation.egress), reasonsText(l.explanation.ingress));
    rows.push(`| ${cells.map(mdCell).join(' | ')} |`);
  }
  return `${rows.join('\n')}\n`;
}

function dotString(s: string): string {
  return `"${escapeControl(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * A graph of groups in netpol-analyzer's dot style: one `cluster_<ns>` subgraph per namespace
 * holding its workloads (blue), external ranges outside (red), edges labelled with connections.
 */
export function renderDot(lines: readonly ConnLine[]): string {
  const nodes = new Map<string, ConnNode>();
  for (const l of lines) {
    nodes.set(l.src.name, l.src);
    nodes.set(l.dst.name, l.dst);
  }
  const byNs = new Map<string, ConnNode[]>();
  const externals: ConnNode[] = [];
  for (const n of [...nodes.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (n.kind === 'external' || n.namespace === undefined) {
      externals.push(n);
      continue;
    }
    let list = byNs.get(n.namespace);
    if (!list) byNs.set(n.namespace, (list = []));
    list.push(n);
  }
  const out = ['digraph {'];
  for (const ns of [...byNs.keys()].sort()) {
    out.push(`\tsubgraph ${dotString(`cluster_${ns}`)} {`);
    out.push('\t\tcolor="black"');
    out.push('\t\tfontcolor="black"');
    for (const n of byNs.get(ns) ?? []) {
      const label = n.name.slice(ns.length + 1);
      out.push(`\t\t${dotString(n.name)} [label=${dotString(label)} color="blue" fontcolor="blue"]`);
    }
    out.push(`\t\tlabel=${dotString(ns)}`);
    out.push('\t}');
  }
  for (const n of externals) out.push(`\t${dotString(n.name)} [label=${dotString(n.name)} color="red2" fontcolor="red2"]`);
  for (const l of lines) {
    // netpol-analyzer weighs edges by the order of their ends, which keeps layouts stable.
    const weight = l.src.name < l.dst.name ? '0.5' : '1';
    // An edge whose verdict is partly UNKNOWN is drawn dashed orange, never as a plain allow.
    const style = l.unknown ? 'color="darkorange" fontcolor="darkorange" style="dashed"' : 'color="gold2" fontcolor="darkgreen"';
    out.push(`\t${dotString(l.src.name)} -> ${dotString(l.dst.name)} [label=${dotString(connText(l))} ${style} weight=${weight}]`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

export function renderConnList(lines: readonly ConnLine[], format: OutputFormat): string {
  switch (format) {
    case 'txt':
      return renderTxt(lines);
    case 'json':
      return renderJson(lines);
    case 'csv':
      return renderCsv(lines);
    case 'md':
      return renderMd(lines);
    case 'dot':
      return renderDot(lines);
  }
}
