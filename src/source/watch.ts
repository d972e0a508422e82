// Watching files for sources that re-read them: fs.watch for speed, plus a poll of every
// input's mtime and size, because fs.watch misses events (renames over a watched file, NFS,
// folders created after the watch). Reloads are serialised: a change during a reload runs one
// more reload after it, never two at once.

import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';

export interface FileWatchOptions {
  /** Files and folders whose content is the input (folders are walked, at most `maxEntries`). */
  readonly paths: () => readonly string[];
  /** Folders to fs.watch (non-recursively); the poll covers the rest. */
  readonly watchDirs: readonly string[];
  /** Names fs.watch reports in a watched folder that are no reason to reload (others' outputs). */
  readonly ignore?: (name: string) => boolean;
  /** Poll period (default 200 ms). */
  readonly pollMs?: number;
  readonly reload: () => Promise<void>;
  readonly onError: (error: Error) => void;
}

const MAX_ENTRIES = 10_000;

/** mtime+size of every input (folders recursively), to notice changes fs.watch missed. */
export async function inputsSignature(paths: readonly string[]): Promise<string> {
  const parts: string[] = [];
  const visit = async (p: string, depth: number): Promise<void> => {
    const s = await stat(p).catch(() => undefined);
    parts.push(s ? `${p}:${s.mtimeMs}:${s.size}` : `${p}:-`);
    if (!s?.isDirectory() || depth > 8 || parts.length > MAX_ENTRIES) return;
    for (const f of (await readdir(p).catch(() => [] as string[])).sort()) {
      if (f.endsWith('.tmp')) continue;
      await visit(join(p, f), depth + 1);
    }
  };
  for (const p of paths) await visit(p, 0);
  return parts.join('|');
}

export class FileWatch {
  private watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private running: Promise<void> | undefined;
  private signature = '';
  private stopped = false;

  constructor(private readonly opts: FileWatchOptions) {}

  async start(): Promise<void> {
    this.signature = await inputsSignature(this.opts.paths());
    for (const dir of this.opts.watchDirs) {
      try {
        this.watchers.push(
          watch(dir, (_event, file) => {
            const name = file?.toString() ?? '';
            if (name.endsWith('.tmp') || this.opts.ignore?.(name)) return;
            this.trigger();
          }),
        );
      } catch {
        // the poll below still notices changes
      }
    }
    const poll = async (): Promise<void> => {
      if (this.stopped) return;
      try {
        const now = await inputsSignature(this.opts.paths());
        if (now !== this.signature) {
          this.signature = now;
          this.trigger();
        }
      } catch (e) {
        this.opts.onError(e instanceof Error ? e : new Error(String(e)));
      }
      if (!this.stopped) this.timer = setTimeout(() => void poll(), this.opts.pollMs ?? 200);
    };
    this.timer = setTimeout(() => void poll(), this.opts.pollMs ?? 200);
  }

  /** Reload now (or once more after the running reload). Resolves when no reload is pending. */
  trigger(): Promise<void> {
    this.dirty = true;
    if (this.running) return this.running;
    this.running = (async () => {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        await this.opts.reload().catch((e: unknown) => this.opts.onError(e instanceof Error ? e : new Error(String(e))));
      }
      this.running = undefined;
    })();
    return this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers) w.close();
    this.watchers = [];
    await this.running;
  }
}
