/** The JavaScript API of the session-replay recorder (`window.Replay`). */
export interface ReplayOptions {
  /** Public ingest key of the project (the script tag's `data-key`). */
  key?: string;
  /** Ingest URL; defaults to `/api/v1/ingest` on the server that served `recorder.js`. */
  endpoint?: string;
  /** Milliseconds between uploads (default 5000). */
  flushIntervalMs?: number;
  /** Fraction of sessions recorded, 0 to 1 (default 1). */
  sampleRate?: number;
  /** `live` (default) uploads continuously; `buffer` keeps the last seconds until an error or `flush()`. */
  mode?: 'live' | 'buffer';
  /** Seconds kept in buffer mode (default 60). */
  bufferSeconds?: number;
  /**
   * URLs whose request and response headers and bodies are recorded: prefixes (resolved
   * against the page) or regular expressions. Empty by default: only method, URL, status,
   * timings and sizes are recorded. Cookies and Authorization are never recorded.
   */
  networkAllowList?: Array<string | RegExp>;
  /**
   * Console capture (the tag's `data-console`): `'all'` (default), `'errors'` (`console.error`
   * and failed `console.assert`), `'off'`, or the levels to capture (`['warn', 'error']`, or
   * `'warn,error'` on the tag). Levels not captured are left unwrapped.
   */
  console?: 'all' | 'errors' | 'off' | Array<'log' | 'debug' | 'info' | 'warn' | 'error' | 'trace' | 'assert'> | string;
  /**
   * PII detection (the tag's `data-pii`, default on): e-mail addresses, card numbers (Luhn-valid),
   * phone numbers and IBANs are masked in recorded text, attribute values, the title, console and
   * error messages and captured network details. `false` turns it off (echoes of values typed into
   * masked fields are masked regardless). Named so that a project setting can set it later.
   */
  pii?: boolean;
  /** Masks every text node (`data-mask-all-text`). */
  maskAllText?: boolean;
  /** Selector of elements whose text and values are masked (`data-mask`), besides `[data-replay-mask]`. */
  mask?: string;
  /** Selector of elements recorded as same-size placeholders (`data-block`), besides `[data-replay-block]`. */
  block?: string;
  /** Selector of controls whose input is not recorded (`data-ignore`), besides `[data-replay-ignore]`. */
  ignore?: string;
  /** Selector of elements whose values and text are recorded as typed (`data-unmask`); never passwords or card fields. */
  unmask?: string;
  /** The freeze watchdog (default on, live mode only). */
  watchdog?: boolean;
  /**
   * Sampled stacks to name the function behind a freeze (default on; only works when the page
   * is served with `Document-Policy: js-profiling`).
   */
  profiling?: boolean;
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
  error?: string;
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
