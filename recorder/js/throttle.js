// Rate bound shared by the diagnostics capture (console, errors, network, long frames): a token
// bucket per kind. What it refuses is counted, and the count is reported as a `Throttled` note
// as soon as the kind is allowed again, so the replay says what it is missing.
import { S, now } from './state.js';

const NOTE_THROTTLED = 0;

export class Throttle {
  /** At most `burst` events, refilled at `burst` per `periodMs`. */
  constructor(what, burst, periodMs) {
    this.what = what;
    this.burst = burst;
    this.rate = burst / periodMs;
    this.tokens = burst;
    this.at = 0;
    this.dropped = 0;
  }

  /** True when one more event may be recorded now. */
  take() {
    const t = now();
    this.tokens = Math.min(this.burst, this.tokens + (t - (this.at || t)) * this.rate);
    this.at = t;
    if (this.tokens < 1) {
      this.dropped++;
      return false;
    }
    this.tokens -= 1;
    if (this.dropped) {
      S.rec.note(t, NOTE_THROTTLED, 0, this.dropped, this.what + ' not recorded (too many)');
      this.dropped = 0;
    }
    return true;
  }
}
