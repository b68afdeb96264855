// The JavaScript API of the session-replay recorder: `window.Replay` (the script tag) and the
// options of both the tag and the npm module entry (`index.d.ts`).
/**
 * Recorder options: `Replay.init({...})`, the module entry's `init({ server, key, ... })`, or the
 * script tag's `data-` attribute named with each option. Privacy options must be set before
 * recording starts (on the tag, or in an `init` queued before the recorder loaded); the
 * `data-replay-mask|block|ignore|unmask` attributes on elements always apply.
 */
export interface ReplayOptions {
  /** Public ingest key of the project (tag: `data-key`). Required. */
  key?: string;
  /**
   * Ingest URL (tag: `data-endpoint`); defaults to `/api/v1/ingest` on the server that served
   * `recorder.js` (or the module entry's `server`).
   */
  endpoint?: string;
  /** Milliseconds between uploads (tag: `data-flush-interval`; default 5000). */
  flushIntervalMs?: number;
  /** Fraction of sessions recorded, 0 to 1, decided once per session (tag: `data-sample-rate`; default 1). */
  sampleRate?: number;
  /**
   * `'live'` (default) uploads continuously; `'buffer'` keeps the last `bufferSeconds` in memory
   * and uploads them only when an error happens, the page freezes or the app calls `flush()`
   * (tag: `data-mode`).
   */
  mode?: 'live' | 'buffer';
  /** Seconds kept in buffer mode (tag: `data-buffer-seconds`; default 60). */
  bufferSeconds?: number;
  /**
   * URLs whose request and response headers and bodies are recorded: prefixes (resolved
   * against the page) or regular expressions (`init` only, no tag attribute). Empty by
   * default: only method, URL, status, timings and sizes are recorded. Cookies and
   * Authorization are never recorded; secret-named headers and body fields are redacted.
   */
  networkAllowList?: Array<string | RegExp>;
  /**
   * Console capture (tag: `data-console`): `'all'` (default), `'errors'` (`console.error` and
   * failed `console.assert`), `'off'`, or the levels to capture (`['warn', 'error']`, or
   * `'warn,error'` on the tag). Levels not captured are left unwrapped.
   */
  console?: 'all' | 'errors' | 'off' | Array<'log' | 'debug' | 'info' | 'warn' | 'error' | 'trace' | 'assert'> | string;
  /**
   * PII detection (tag: `data-pii`, default on): e-mail addresses, card numbers (Luhn-valid),
   * phone numbers and IBANs are masked in recorded text, attribute values, the title, console and
   * error messages and captured network details. `false` turns it off (echoes of values typed into
   * masked fields are masked regardless).
   */
  pii?: boolean;
  /** Masks every text node of the page, not only masked subtrees (tag: `data-mask-all-text`; default off). */
  maskAllText?: boolean;
  /**
   * Reads the project's recorder settings from the server at start (tag: `data-remote-settings`;
   * default on): the sampling, mode, mask-all-text and body-capture URLs set in the project's
   * settings apply without redeploying the app (cached 5 minutes in the tab; what the project
   * leaves empty is the tag's; privacy only tightens). `false` keeps the tag's and `init()`'s only.
   */
  remoteSettings?: boolean;
  /**
   * CSS selector of elements whose text and values are masked (tag: `data-mask`), besides the
   * elements with a `data-replay-mask` attribute.
   */
  mask?: string;
  /**
   * CSS selector of elements recorded as same-size placeholders, their subtree never read
   * (tag: `data-block`), besides the elements with a `data-replay-block` attribute.
   */
  block?: string;
  /**
   * CSS selector of controls whose input is not recorded at all (tag: `data-ignore`), besides
   * the elements with a `data-replay-ignore` attribute.
   */
  ignore?: string;
  /**
   * CSS selector of elements whose values and text are recorded as typed (tag: `data-unmask`),
   * besides the elements with a `data-replay-unmask` attribute; never passwords or card fields.
   */
  unmask?: string;
  /** The freeze watchdog (default on; `init` only: `false` turns it off). */
  watchdog?: boolean;
  /**
   * Sampled stacks to name the function behind a freeze (default on; `init` only; only works
   * where the page is served with `Document-Policy: js-profiling`, i.e. Chromium).
   */
  profiling?: boolean;
  /**
   * Records every `<canvas>` as image frames when it changes (tag: `data-canvas`; default off;
   * the project's setting turns it on too). Off, only canvases marked `data-replay-canvas` are
   * recorded; `data-replay-canvas="false"` leaves one out. Canvases in masked or blocked parts
   * are never recorded, nor, with mask-all-text, unmarked ones.
   */
  canvas?: boolean;
  /** Most frames per second recorded of one canvas (tag: `data-canvas-fps`; default 2, at most 10). */
  canvasFps?: number;
  /**
   * Bytes of canvas frames one session may send (tag: `data-canvas-budget`; default 8 MiB);
   * frames beyond it are dropped, counted and noted in the recording.
   */
  canvasBudget?: number;
  /**
   * The recorder's own main-thread time it allows itself, in percent of the window
   * (tag: `data-cpu-budget`; default 3, 0 turns the safety valve off). Past it the recorder
   * records page changes once a second in their final state; still past it a window later, it
   * stops; each step is a note in the recording.
   */
  cpuBudget?: number;
  /** Seconds over which `cpuBudget` is judged (tag: `data-cpu-budget-window`; default 60, at least 5). */
  cpuBudgetWindow?: number;
}
/** Delivery figures. */
export interface ReplayStats {
  acked: number;
  rejected: number;
  pending: number;
  droppedBatches: number;
  restored: number;
  /** Events dropped because the recorder's buffer was full. */
  dropped: number;
  /** Uploads run in a worker (and the freeze watchdog is active). */
  worker: boolean;
  /** Times the recorder moved to a fresh wasm instance because a big batch had grown its memory. */
  renewals?: number;
  /** Times the upload worker was replaced by a fresh one to free the batches it had been handed. */
  workerRenewals?: number;
  /** Bytes of wasm linear memory the recorder holds now. */
  wasmMemory?: number;
  error?: string;
  /**
   * Canvas frames recorded (`canvas` option): frames sent and their bytes, frames dropped (over
   * the byte budget or too large), main-thread milliseconds spent capturing and handing them over.
   */
  canvas?: { frames: number; bytes: number; dropped: number; mainMs: number };
  /**
   * The safety valve: its level (0 normal, 1 page changes coalesced, 2 stopped), the share of
   * the main thread the recorder used over the last judged window and its budget (percent),
   * and the recorder's own main-thread milliseconds since it started.
   */
  valve?: { level: number; sharePct: number; budgetPct: number; ownMs: number };
}
export interface ReplayApi {
  /** Starts recording (the script tag does this itself when it has `data-key`); later calls update options. */
  init(options: ReplayOptions): Promise<void>;
  /** The user of this session (shown and filterable in the session list); `traits` must be JSON-serialisable. */
  identify(user: string, traits?: Record<string, unknown>): Promise<void>;
  /** Feature flags in effect for this session (JSON-serialisable). */
  setFlags(flags: Record<string, unknown>): Promise<void>;
  /** The app's release (version, commit). */
  setRelease(release: string): Promise<void>;
  /** The app's environment: `production`, `staging`, ... */
  setEnvironment(environment: string): Promise<void>;
  /** Records an application event; `data` must be JSON-serialisable. */
  addEvent(name: string, data?: unknown): Promise<void>;
  /** Records an error the app caught (with its stack); repeats are counted, not resent. */
  captureError(error: unknown): Promise<void>;
  /** Uploads everything recorded so far; resolves once the server acknowledged it. */
  flush(): Promise<ReplayStats>;
  /** Stops recording and uploads what is left. */
  stop(): Promise<void>;
  /** The viewer URL of this session. */
  sessionUrl(): Promise<string>;
}
declare global {
  interface Window {
    Replay: ReplayApi;
  }
}
