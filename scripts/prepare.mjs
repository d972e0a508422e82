// npm `prepare` (runs after `npm ci` / `npm install` in a clone): builds the dashboard so that
// the first `weir serve` shows it, with no extra step. Vite is a devDependency: an install
// without dev dependencies (`npm ci --omit=dev`) skips the build with a note instead of failing,
// and the server then says how to build it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const vite = join(repo, 'node_modules', 'vite', 'bin', 'vite.js');
const config = join(repo, 'src', 'ui', 'web', 'vite.config.ts');

if (!existsSync(vite) || !existsSync(config)) {
  process.stderr.write('weir: vite is not installed (an install without dev dependencies): the dashboard is not built; run `npm install && npm run build:ui` to build it\n');
  process.exit(0);
}
const r = spawnSync(process.execPath, [vite, 'build', '--config', config], { cwd: repo, stdio: 'inherit' });
if (r.status !== 0) {
  process.stderr.write(`weir: building the dashboard failed (vite exited with ${String(r.status ?? r.signal)})\n`);
  process.exit(1);
}
process.stdout.write('weir: dashboard built in src/ui/web/dist\n');
