// Names, kinds and labels come from manifests: printed raw, an ESC or CSI in them would let a
// manifest rewrite the terminal (move the cursor, hide lines, retitle the window). Text output
// shows every control character escaped instead; JSON stays JSON.

// C0 controls, DEL, C1 controls, and the Unicode bidirectional overrides and isolates (which
// can reorder what a line appears to say).
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL_BUT_LAYOUT = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

function code(c: string): string {
  const n = c.charCodeAt(0);
  return n <= 0xff ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`;
}

/** One field (a name, a kind): every control character as `\xNN` / `\uNNNN`, newlines too. */
export function escapeControl(s: string): string {
  return s.replace(CONTROL, code);
}

/** A whole text output: control characters escaped, its own newlines and tabs kept. */
export function escapeText(s: string): string {
  return s.replace(CONTROL_BUT_LAYOUT, code);
}

/** JSON text: JSON.stringify already escapes C0; DEL, C1 and bidi controls become \u escapes. */
export function escapeJson(s: string): string {
  return s.replace(/[\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
