// The applier: keeps what it last applied and moves the kernel to a new desired ruleset in one
// `nft -f -` transaction — a partial sync when it knows the kernel's state, an atomic full
// replace otherwise (first apply, after a restart, after a failure). A failed transaction
// changes nothing in the kernel (nf_tables commits or aborts as a whole), so on failure the
// last applied model is still exactly what the kernel holds.

import { run } from '../exec/run.js';
import { diffScript, fullScript, patchScript, type DiffSummary } from '../render/script.js';
import { rulesetStats, type Ruleset, type RulesetStats } from '../render/ruleset.js';

export interface NftRunResult {
  readonly ok: boolean;
  readonly stderr: string;
}

/** Feeds one script to `nft -f -` as one transaction. */
export type NftRunner = (script: string) => Promise<NftRunResult>;

/** `nft -f -`, inside `netns` (`ip netns exec`) when given. */
export function nftRunner(netns?: string, timeoutMs = 60_000): NftRunner {
  const argv = netns ? ['ip', 'netns', 'exec', netns, 'nft', '-f', '-'] : ['nft', '-f', '-'];
  return async (script) => {
    try {
      const r = await run(argv, { input: script, allowFailure: true, timeoutMs });
      return { ok: r.code === 0, stderr: r.stderr.trim() };
    } catch (error) {
      return { ok: false, stderr: error instanceof Error ? error.message : String(error) };
    }
  };
}

export interface ApplyResult {
  readonly ok: boolean;
  readonly mode: 'full' | 'partial' | 'noop';
  readonly error?: string;
  /** Time spent in `nft` (script text built beforehand). */
  readonly applyMs: number;
  readonly scriptBytes: number;
  readonly stats: RulesetStats;
  readonly summary?: DiffSummary;
  /** Something allowed before may not be now: the cue for a `--strict` conntrack sweep. */
  readonly narrowed: boolean;
}

/** Keeps nft's message short: the first lines say which command failed and why. */
function shortError(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(0, 6).join('\n') || 'nft failed';
}

/** The applied model keeps no link to the one before it (a chain of patches would leak). */
function withoutPatch(rs: Ruleset): Ruleset {
  return rs.patch ? { sets: rs.sets, chains: rs.chains, counted: rs.counted, reasons: rs.reasons } : rs;
}

export class Applier {
  private last: Ruleset | undefined;

  constructor(private readonly runner: NftRunner) {}

  /** What the kernel holds, as far as this applier knows. */
  get applied(): Ruleset | undefined {
    return this.last;
  }

  /** Forget the kernel's state: the next apply is a full replace. */
  reset(): void {
    this.last = undefined;
  }

  async apply(next: Ruleset): Promise<ApplyResult> {
    const stats = rulesetStats(next);
    if (this.last) {
      // A patch recorded against exactly what the kernel holds needs no diff.
      const diff = next.patch?.base === this.last ? patchScript(next, next.patch) : diffScript(this.last, next);
      if (diff && diff.script === '') return { ok: true, mode: 'noop', applyMs: 0, scriptBytes: 0, stats, summary: diff.summary, narrowed: false };
      if (diff) {
        const t0 = performance.now();
        const r = await this.runner(diff.script);
        const applyMs = performance.now() - t0;
        if (r.ok) {
          this.last = withoutPatch(next);
          return { ok: true, mode: 'partial', applyMs, scriptBytes: diff.script.length, stats, summary: diff.summary, narrowed: diff.summary.narrowed };
        }
        // The kernel may have drifted from our model (someone edited the table): fall back to
        // a full replace, which does not depend on what is there.
      }
    }
    const script = fullScript(next);
    const t0 = performance.now();
    const r = await this.runner(script);
    const applyMs = performance.now() - t0;
    if (!r.ok) return { ok: false, mode: 'full', error: shortError(r.stderr), applyMs, scriptBytes: script.length, stats, narrowed: false };
    const narrowed = this.last !== undefined;
    this.last = withoutPatch(next);
    return { ok: true, mode: 'full', applyMs, scriptBytes: script.length, stats, narrowed };
  }
}
