// The client-side picks that bench/lb-client.mjs runs and bench/lb-sim.ts models, in one place
// (plain JavaScript: lb-client.mjs runs under `node` alone, in the client pod's namespace).

/**
 * nginx's smooth weighted round-robin: deterministic, interleaved. `current` is the caller's
 * running state (one number per endpoint, starting at 0), updated in place.
 * @param {number[]} current
 * @param {readonly number[]} weights
 * @returns {number}
 */
export function smoothWeighted(current, weights) {
  const total = weights.reduce((a, b) => a + b, 0);
  let best = 0;
  for (let i = 0; i < weights.length; i++) {
    current[i] += weights[i];
    if (current[i] > current[best]) best = i;
  }
  current[best] -= total;
  return best;
}

/**
 * Least requests in flight, ties broken by round-robin from `start`. Endpoints `skip` names are
 * passed over unless nothing else is left (the oracle's endpoints it knows to be bad right now).
 * -1 when there are no endpoints.
 * @param {readonly number[]} inFlight
 * @param {number} start
 * @param {(i: number) => boolean} [skip]
 * @returns {number}
 */
export function leastInFlight(inFlight, start, skip = () => false) {
  const n = inFlight.length;
  let best = -1;
  for (let pass = 0; pass < 2 && best < 0; pass++) {
    for (let k = 0; k < n; k++) {
      const i = (start + k) % n;
      if (pass === 0 && skip(i)) continue;
      if (best < 0 || inFlight[i] < inFlight[best]) best = i;
    }
  }
  return best;
}
