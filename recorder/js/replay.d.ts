/** The JavaScript API of the session-replay recorder (`window.Replay`). */
export interface ReplayOptions {
  /** Public ingest key of the project (the script tag's `data-key`). */
  key?: string;
  /** Ingest URL; defaults to `/api/v1/ingest` on the server that served `recorder.js`. */
  endpoint?: string;
  /** Milliseconds between uploads (default 5000). */
  flushIntervalMs?: number;
}
export interface ReplayApi {
  /** Starts recording (the script tag does this itself when it has `data-key`). */
  init(options: ReplayOptions): Promise<void>;
  identify(user: string, traits?: Record<string, unknown>): Promise<void>;
  setFlags(flags: Record<string, unknown>): Promise<void>;
  setRelease(release: string): Promise<void>;
  setEnvironment(environment: string): Promise<void>;
  /** Records an application event; `data` must be JSON-serialisable. */
  addEvent(name: string, data?: unknown): Promise<void>;
  captureError(error: unknown): Promise<void>;
  /** Uploads everything recorded so far; resolves once the server acknowledged it. */
  flush(): Promise<{ acked: number; rejected: number; pending: number }>;
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
