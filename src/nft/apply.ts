// The applier: keeps what it last applied and moves the kernel to a new desired ruleset in one
// `nft -f -` transaction — a partial sync when it knows the kernel's state, an atomic full
// replace otherwise (first apply, after a restart, after a failure). A failed transaction
// changes nothing in the kernel (nf_tables commits or aborts as a whole), so on failure the
// last applied model is still exactly what the kernel holds.
//
// Element patches (a pod added or removed) go as one netlink batch when an ElementWriter is
// given (src/nft/element-writer.ts): `nft` 1.0.6 lists every chain and set of the namespace
// before any element change, so its cost grows with the table; the batch's does not.

import { run } from '../exec/run.js';
import { diffScript, fullScript, patchScript, type DiffSummary } from '../render/script.js';
import { rememberStats, rulesetStats, type ElementPatch, type Ruleset, type RulesetStats } from '../render/ruleset.js';
import type { ChainChanges, ElementChange, ElementWriter } from './element-writer.js';

export interface NftRunResult {
  readonly ok: boolean;
  readonly stderr: string;
}

/** Feeds one script to `nft -f -` as one transaction. */
export type NftRunner = (script: string) => Promise<NftRunResult>;

/**
 * `nft -f -`, inside `netns` (`ip netns exec`) when given. Without `timeoutMs`, a script gets
 * 60 s plus 10 s per MB: the full table of 100k pods is ~22 MB, and `nft` took 61–150 s to load
 * it on a loaded 2-core machine — a fixed 60 s killed it.
 */
export function nftRunner(netns?: string, timeoutMs?: number): NftRunner {
  const argv = netns ? ['ip', 'netns', 'exec', netns, 'nft', '-f', '-'] : ['nft', '-f', '-'];
  return async (script) => {
    try {
      const r = await run(argv, { input: script, allowFailure: true, timeoutMs: timeoutMs ?? 60_000 + Math.ceil(script.length / 100) });
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
  /** How a change reached the kernel: one `nft -f`, or one netlink batch of set elements. */
  readonly via?: 'nft' | 'netlink';
  /** Why the netlink batch did not do it, when the change then went through `nft -f`. */
  readonly fallback?: string;
}

/** Keeps nft's message short: the first lines say which command failed and why. */
function shortError(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  return lines.slice(0, 6).join('\n') || 'nft failed';
}

/** The applied model keeps no link to the one before it (a chain of patches would leak). */
function withoutPatch(rs: Ruleset): Ruleset {
  if (!rs.patch) return rs;
  const out = { sets: rs.sets, chains: rs.chains, counted: rs.counted, reasons: rs.reasons };
  rememberStats(out, rulesetStats(rs));
  return out;
}

/** A patch as element changes: deletions first (a changed map verdict is delete + add). */
function patchChanges(next: Ruleset, patch: ElementPatch): ElementChange[] {
  const out: ElementChange[] = [];
  for (const [verb, byName] of [['delete', patch.removed], ['add', patch.added]] as const) {
    for (const [name, elements] of byName) {
      const set = next.sets.get(name);
      if (set && elements.length > 0) out.push({ verb, set, elements });
    }
  }
  return out;
}

export class Applier {
  private last: Ruleset | undefined;

  constructor(
    private readonly runner: NftRunner,
    private readonly elements?: ElementWriter,
  ) {}

  /** What the kernel holds, as far as this applier knows. */
  get applied(): Ruleset | undefined {
    return this.last;
  }

  /** Releases what the element writer holds (its socket); applying again reopens it. */
  close(): void {
    this.elements?.close();
  }

  /** Forget the kernel's state: the next apply is a full replace. */
  reset(): void {
    this.last = undefined;
  }

  async apply(next: Ruleset): Promise<ApplyResult> {
    const stats = rulesetStats(next);
    let fallback: string | undefined;
    if (this.last) {
      // A patch recorded against exactly what the kernel holds needs no diff.
      const patch = next.patch?.base === this.last ? next.patch : undefined;
      const diff = patch ? patchScript(next, patch) : diffScript(this.last, next);
      if (diff && diff.script === '') return { ok: true, mode: 'noop', applyMs: 0, scriptBytes: 0, stats, summary: diff.summary, narrowed: false };
      let partial = diff !== undefined;
      if (patch && this.elements) {
        const t0 = performance.now();
        const chains: ChainChanges | undefined = patch.chainsAdded || patch.chainsRemoved ? { removed: patch.chainsRemoved ?? [], added: patch.chainsAdded ?? [] } : undefined;
        const w = await this.elements.write(patchChanges(next, patch), chains);
        const applyMs = performance.now() - t0;
        if (w.outcome === 'applied') {
          this.last = withoutPatch(next);
          return { ok: true, mode: 'partial', via: 'netlink', applyMs, scriptBytes: 0, stats, summary: diff?.summary, narrowed: diff?.summary.narrowed ?? true };
        }
        fallback = `netlink ${w.outcome}: ${w.error ?? ''}`;
        // Refused: the kernel is not what the model says (it changed nothing); unknown: the
        // batch may or may not have been committed. Either way only a full replace is sure.
        // Unsupported or not sent: the same patch through `nft -f`.
        if (w.outcome === 'refused' || w.outcome === 'unknown') partial = false;
        if (w.outcome === 'unknown') this.last = undefined;
      }
      if (diff && partial) {
        const t0 = performance.now();
        const r = await this.runner(diff.script);
        const applyMs = performance.now() - t0;
        if (r.ok) {
          this.last = withoutPatch(next);
          return { ok: true, mode: 'partial', via: 'nft', applyMs, scriptBytes: diff.script.length, stats, summary: diff.summary, narrowed: diff.summary.narrowed, ...(fallback ? { fallback } : {}) };
        }
        // The kernel may have drifted from our model (someone edited the table): fall back to
        // a full replace, which does not depend on what is there.
      }
    }
    const script = fullScript(next);
    const t0 = performance.now();
    const r = await this.runner(script);
    const applyMs = performance.now() - t0;
    const also = fallback ? { fallback } : {};
    if (!r.ok) return { ok: false, mode: 'full', via: 'nft', error: shortError(r.stderr), applyMs, scriptBytes: script.length, stats, narrowed: false, ...also };
    const narrowed = this.last !== undefined || fallback !== undefined;
    this.last = withoutPatch(next);
    return { ok: true, mode: 'full', via: 'nft', applyMs, scriptBytes: script.length, stats, narrowed, ...also };
  }
}
