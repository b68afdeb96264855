// The wasm Recorder as the capture modules call it (`S.rec.click(now, id, ...)`): one method per
// operation, each packing its arguments into the one wasm export `op` (recorder/src/ops.rs says
// how: numbers into one array, strings back to back into one string, a u32 array, bytes). One
// export instead of one per method keeps the wasm-bindgen glue, in JavaScript and in wasm, small.
import { Recorder as Wasm } from './recorder_wasm.js';

/** `name:kinds` of every operation; its code is its place (recorder/src/ops.rs `OPS`, checked equal). */
const OPS = 'set_pii:n remember:ns meta:nssnnss snapshot:niSnn mutation:niS frame_document:nnniSnn frame_mutation:niSnn frame:nnsnn font:nssbsssss input:nnsn click:nnnnnssn scroll_depth:nnn mouse:nf scroll:nnnn viewport:nnn custom:nss css:nnnsisss navigation:nsn canvas:nnsbnn dialog:nnn focus:nnn selection:nnnnn media:nnnnnnn touch:nnf visibility:nn note:nnnns count_error: flush:nn add_dropped:n console:nnas error:nnsssnnn network:nnssnnnnnnsaassnfs long_frame:nnnnnaf metric:nsn environment:nsssnnnsss app_fact:nnss watch:nn freeze_marker:nss take_freeze_marker: freeze_ended:nnaf websocket:nnnsssffa save:';

const NO_INTS = new Uint32Array(0);
const NO_BYTES = new Uint8Array(0);

/**
 * A string argument as it is carried: nothing for `null`/`undefined`, never a misaligned tape.
 * Strings go back to back in one string, cut by their UTF-16 lengths: a lone surrogate is made
 * U+FFFD first, or a string ending in a lone high half and the next starting with a lone low
 * half would join into one character in the UTF-8 wasm reads, and every later string of the
 * operation would shift by one.
 */
const text = (v) => {
  // (ES2024's isWellFormed/toWellFormed: not in the type check's lib, absent from old engines.)
  const s = /** @type {any} */ (v == null ? '' : '' + v);
  return typeof s.isWellFormed !== 'function' || s.isWellFormed() ? s : s.toWellFormed();
};

export class Recorder {
  /** A recorder for page view `page` of session `session` (see recorder/src/lib.rs), or around `w`. */
  constructor(session, page, maxBatchBytes, maxBufferBytes, w = undefined) {
    this.w = w || new Wasm(session, page, maxBatchBytes, maxBufferBytes);
  }

  /** A recorder from the state `save()` returned (in another instance of the wasm). */
  static restore(state) {
    return new Recorder('', '', 0, 0, Wasm.restore(state));
  }

  free() { this.w.free(); }
  should_flush() { return this.w.num(0, 0) > 0; }
  pending_bytes() { return this.w.num(1, 0); }
  dropped_total() { return this.w.num(2, 0); }
  beat(t) { return this.w.num(3, t) > 0; }
  /** The armed freeze marker moved to `t` in place: the time it carries, or 0 (arm a new one). */
  move_freeze_marker(t) { return this.w.num(4, t); }
  /** Where the armed marker's times are in its bytes (-1: they cannot be moved). */
  freeze_marker_times_at() { return this.w.num(5, 0); }
}

OPS.split(' ').forEach((op, code) => {
  const [name, letters] = op.split(':');
  // (Indexed, not `Array.from`: MooTools up to 1.5, still on many sites, replaces it with one
  // that wraps a string whole.)
  const kinds = [];
  for (let i = 0; i < letters.length; i++) kinds.push(letters[i]);
  Recorder.prototype[name] = function () {
    const nums = [];
    let strs = '';
    let ints = NO_INTS;
    let bytes = NO_BYTES;
    for (let i = 0; i < kinds.length; i++) {
      const k = kinds[i];
      const v = arguments[i] ?? (k === 'n' ? 0 : '');
      if (k === 'n') nums.push(v);
      else if (k === 's') {
        const s = text(v);
        nums.push(s.length);
        strs += s;
      } else if (k === 'S') strs += text(v);
      else if (k === 'i') ints = v;
      else if (k === 'b') bytes = v;
      else if (k === 'f') {
        nums.push(v.length);
        for (let j = 0; j < v.length; j++) nums.push(v[j]);
      } else {
        nums.push(v.length);
        for (let j = 0; j < v.length; j++) {
          const s = text(v[j]);
          nums.push(s.length);
          strs += s;
        }
      }
    }
    return this.w.op(code, nums, strs, ints, bytes);
  };
});
