// Types of bench/pick.mjs for bench/lb-sim.ts.
export declare function smoothWeighted(current: number[], weights: readonly number[]): number;
export declare function leastInFlight(inFlight: readonly number[], start: number, skip?: (i: number) => boolean): number;
