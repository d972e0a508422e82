// One connectivity diff, several renderings, after np-guard's netpol-analyzer diff so that the
// two can be compared: txt, csv, md and dot; json for programs.

import { diffLineText, type ConnectivityDiff, type DiffLine } from './diff.js';
import { escapeControl, escapeJson } from './escape.js';

export const DIFF_FORMATS = ['txt', 'json', 'csv', 'md', 'dot'] as const;
export type DiffFormat = (typeof DIFF_FORMATS)[number];

export function renderDiffTxt(d: ConnectivityDiff): string {
  return `${['Connectivity diff:', ...d.lines.map((l) => escapeControl(diffLineText(l)))].join('\n')}\n`;
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function renderDiffCsv(d: ConnectivityDiff): string {
  const rows = ['diff-type,source,destination,old,new,workloads-diff-info'];
  for (const l of d.lines) rows.push([l.type, l.src, l.dst, l.old, l.new, l.workloadsInfo].map((f) => csvField(escapeControl(f))).join(','));
  return `${rows.join('\n')}\n`;
}

export function renderDiffMd(d: ConnectivityDiff): string {
  const rows = ['| diff-type | source | destination | old | new | workloads-diff-info |', '|-----------|--------|-------------|------|------|---------------------|'];
  const cell = (s: string) => escapeControl(s).replace(/\|/g, '\\|');
  for (const l of d.lines) rows.push(`| ${[l.type, l.src, l.dst, l.old, l.new, l.workloadsInfo].map(cell).join(' | ')} |`);
  return `${rows.join('\n')}\n`;
}

export function renderDiffJson(d: ConnectivityDiff): string {
  return escapeJson(`${JSON.stringify(
    {
      diff: d.lines.map((l) => ({ diffType: l.type, src: l.src, dst: l.dst, old: l.old, new: l.new, workloadsDiffInfo: l.workloadsInfo })),
      workloadsAdded: d.workloadsAdded,
      workloadsRemoved: d.workloadsRemoved,
    },
    null,
    2,
  )}\n`);
}

function q(s: string): string {
  return `"${escapeControl(s).replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

// np-guard's diff colours: new peers and added connections green, removed ones red, changed
// connections magenta, the rest grey (connections) or blue (peers).
const ADDED = '#008000';
const REMOVED_PEER = 'red';
const REMOVED_EDGE = 'red2';
const CHANGED = 'magenta';
const UNCHANGED = 'grey';
const PERSISTENT = 'blue';

/** The diff as a graph: every connection of both versions, coloured by what happened to it. */
export function renderDiffDot(d: ConnectivityDiff): string {
  const peers = new Map<string, string>();
  const added = new Set(d.workloadsAdded);
  const removed = new Set(d.workloadsRemoved);
  const edges: string[] = [];
  const all: DiffLine[] = [...d.unchanged, ...d.lines];
  for (const l of all) {
    for (const p of [l.src, l.dst]) {
      if (!peers.has(p)) peers.set(p, added.has(p) ? ADDED : removed.has(p) ? REMOVED_PEER : PERSISTENT);
    }
    const [label, color] =
      l.type === 'changed' ? [`${l.new} (old: ${l.old})`, CHANGED] : l.type === 'added' ? [l.new, ADDED] : l.type === 'removed' ? [l.old, REMOVED_EDGE] : [l.new, UNCHANGED];
    edges.push(`\t${q(l.src)} -> ${q(l.dst)} [label=${q(label)} color=${q(color)} fontcolor=${q(color)}]`);
  }
  const peerLines = [...peers.entries()].map(([p, c]) => `\t${q(p)} [label=${q(p)} color=${q(c)} fontcolor=${q(c)}]`);
  const legend = [
    '\tsubgraph cluster_legend {',
    '\t\tlabel="Legend"',
    '\t\tfontsize = 10',
    `\t\tadded [label="added connection" shape=plaintext fontcolor=${q(ADDED)}]`,
    `\t\tremoved [label="removed connection" shape=plaintext fontcolor=${q(REMOVED_EDGE)}]`,
    `\t\tchanged [label="changed connection" shape=plaintext fontcolor=${q(CHANGED)}]`,
    `\t\tunchanged [label="unchanged connection" shape=plaintext fontcolor=${q(UNCHANGED)}]`,
    '\t}',
  ];
  return `${['digraph {', ...peerLines.sort(), ...edges.sort(), ...legend, '}'].join('\n')}\n`;
}

export function renderDiff(d: ConnectivityDiff, format: DiffFormat): string {
  switch (format) {
    case 'txt':
      return renderDiffTxt(d);
    case 'json':
      return renderDiffJson(d);
    case 'csv':
      return renderDiffCsv(d);
    case 'md':
      return renderDiffMd(d);
    case 'dot':
      return renderDiffDot(d);
  }
}
