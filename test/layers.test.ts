// The import graph reads downward: the engine (policy, model, net) and the data plane (render,
// nft, agent, exec) never import the lab, the CLI or the HTTP side; the lab and the CLI use
// them. The renderer is pure: no filesystem, no processes. Checked on the real source tree, and
// on a planted violation to show the check can fail.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');

interface Rule {
  readonly layer: string;
  /** Top-level folders under src/ the rule applies to. */
  readonly folders: readonly string[];
  /** Top-level folders under src/ they must not import. */
  readonly forbiddenFolders: readonly string[];
  /** Bare module specifiers they must not import (`node:fs`, …). */
  readonly forbiddenModules?: readonly string[];
}

const ABOVE_THE_ENGINE = ['lab', 'cli', 'api', 'ui', 'flows', 'render', 'nft', 'agent', 'exec', 'source', 'load', 'analyze'];
export const RULES: readonly Rule[] = [
  { layer: 'engine', folders: ['policy', 'model', 'net'], forbiddenFolders: ABOVE_THE_ENGINE },
  { layer: 'data plane', folders: ['render', 'nft', 'agent', 'exec'], forbiddenFolders: ['lab', 'cli', 'api', 'ui', 'flows'] },
  {
    layer: 'pure renderer',
    folders: ['render'],
    forbiddenFolders: ['nft', 'agent', 'exec', 'source', 'load'],
    forbiddenModules: ['node:fs', 'node:fs/promises', 'node:child_process', 'node:net', 'node:http', 'node:worker_threads'],
  },
  { layer: 'command execution', folders: ['exec'], forbiddenFolders: ['model', 'policy', 'net', 'render', 'nft', 'agent', 'source', 'load', 'analyze'] },
];

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|(?:^|\n)\s*import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

/** The module specifiers a source text imports (static, re-exports, side-effect and dynamic). */
export function importsOf(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** Violations of RULES by `modules` (path relative to src/, posix → its import specifiers). */
export function layerViolations(modules: ReadonlyMap<string, readonly string[]>): string[] {
  const out: string[] = [];
  for (const [file, specs] of modules) {
    const folder = file.split('/')[0];
    for (const rule of RULES) {
      if (!rule.folders.includes(folder)) continue;
      for (const spec of specs) {
        if (spec.startsWith('.')) {
          const target = posix.normalize(posix.join(posix.dirname(file), spec));
          const targetFolder = target.split('/')[0];
          if (target.startsWith('..')) continue;
          if (rule.forbiddenFolders.includes(targetFolder)) out.push(`${rule.layer}: src/${file} imports src/${target} (${targetFolder}/ is not below it)`);
        } else if (rule.forbiddenModules?.includes(spec)) {
          out.push(`${rule.layer}: src/${file} imports ${spec} (the renderer does no I/O)`);
        }
      }
    }
  }
  return out;
}

function sourceModules(): Map<string, string[]> {
  const modules = new Map<string, string[]>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'web' && entry.name !== 'node_modules') walk(path);
      } else if (/\.(ts|mts|mjs|js)$/.test(entry.name)) {
        modules.set(relative(SRC, path).split('\\').join('/'), importsOf(readFileSync(path, 'utf8')));
      }
    }
  };
  walk(SRC);
  return modules;
}

test('the source tree reads downward: engine and data plane import neither the lab nor the CLI; the renderer does no I/O', () => {
  const modules = sourceModules();
  assert.ok(modules.size > 50, `found the source tree (${modules.size} modules)`);
  for (const folder of ['render', 'agent', 'nft', 'exec', 'policy', 'model']) {
    assert.ok([...modules.keys()].some((f) => f.startsWith(`${folder}/`)), `src/${folder}/ exists`);
  }
  assert.deepEqual(layerViolations(modules), []);
});

test('the check fails on a planted upward import (data plane → lab, engine → CLI, renderer → fs)', () => {
  const planted = new Map<string, string[]>([
    ['agent/agent.ts', ['../model/cluster.js', '../lab/state.js']],
    ['render/render.ts', ["node:fs/promises", './names.js']],
    ['nft/apply.ts', ['../cli/main.js']],
    ['policy/engine.ts', ['./cache.js', '../lab/names.js']],
    ['lab/agent.ts', ['../agent/agent.js']],
  ]);
  const v = layerViolations(planted);
  assert.equal(v.length, 4, v.join('\n'));
  assert.ok(v.some((x) => x.includes('src/agent/agent.ts imports src/lab/state.js')));
  assert.ok(v.some((x) => x.includes('src/render/render.ts imports node:fs/promises')));
  assert.ok(v.some((x) => x.includes('src/nft/apply.ts imports src/cli/main.js')));
  assert.ok(v.some((x) => x.includes('src/policy/engine.ts imports src/lab/names.js')));
  // And through the real parser: an added line in a real module is found.
  const text = `${readFileSync(join(SRC, 'agent', 'agent.ts'), 'utf8')}\nimport { readState } from '../lab/state.js';\n`;
  assert.deepEqual(layerViolations(new Map([['agent/agent.ts', importsOf(text)]])), ['data plane: src/agent/agent.ts imports src/lab/state.js (lab/ is not below it)']);
});
