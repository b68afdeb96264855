// Declarations for the JS type check only (never shipped): browser features the recorder uses
// where they exist that TypeScript's DOM library does not describe (yet), and the player's
// test hook.

/** The Temporal proposal (`Temporal.Now.timeZoneId()`), where the browser has it. */
declare const Temporal: { Now?: { timeZoneId(): string } } | undefined;

interface Navigator {
  /** User-Agent Client Hints (Chromium). */
  userAgentData?: { platform?: string };
  /** The Network Information API (Chromium). */
  connection?: { effectiveType?: string; type?: string };
  /** Device memory in GiB, rounded (Chromium). */
  deviceMemory?: number;
}

interface Performance {
  /** The JS heap (Chromium). */
  memory?: { usedJSHeapSize: number };
}

/** A trace of the JS Self-Profiling API. */
interface ProfilerTrace {
  resources: string[];
  frames: { name?: string; resourceId?: number; line?: number; column?: number }[];
  stacks: { frameId: number; parentId?: number }[];
  samples: { timestamp: number; stackId?: number }[];
}

interface Window {
  /** The JS Self-Profiling API (Chromium, with `Document-Policy: js-profiling`). */
  Profiler?: new (options: { sampleInterval: number; maxBufferSize: number }) => { stop(): Promise<ProfilerTrace> };
  /** The player's hook for tests, the benchmark and links (viewer/static/player.js). */
  replayPlayer?: object;
}
