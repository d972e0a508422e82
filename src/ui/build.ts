// Builds the dashboard with Vite when its output is missing (tests and `startVisibility`).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const WEB_DIR = resolve(dirname(fileURLToPath(import.meta.url)), 'web');
export const UI_DIST = join(WEB_DIR, 'dist');
const REPO = resolve(WEB_DIR, '..', '..', '..');

let built = false;

/** Runs `vite build` once per process if dist/index.html is missing (or `force`). */
export function ensureUiBuilt(force = false): string {
  if (built && !force) return UI_DIST;
  if (force || !existsSync(join(UI_DIST, 'index.html'))) {
    const vite = join(REPO, 'node_modules', 'vite', 'bin', 'vite.js');
    const r = spawnSync(process.execPath, [vite, 'build', '--config', join(WEB_DIR, 'vite.config.ts')], { cwd: REPO, encoding: 'utf8', timeout: 180_000 });
    if (r.status !== 0) throw new Error(`vite build failed (status ${String(r.status)}):\n${r.stdout}\n${r.stderr}`);
  }
  built = true;
  return UI_DIST;
}
