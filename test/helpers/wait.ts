// Waiting for a condition in tests: poll until a value appears or a deadline passes, and say
// what was awaited (and, with `show`, what was there instead) when it does not.

/**
 * Polls `fn` until it returns a value other than undefined or false, and returns that value;
 * throws `timed out waiting for <what>` (followed by `show()`, if given) after `timeoutMs`.
 */
export async function until<T>(
  what: string,
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
  show?: () => string | Promise<string>,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${show ? `: ${await show()}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
