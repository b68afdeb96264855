// A sample app using the replay-recorder npm package the way an app would, with every option
// of the recorder set (`Required<ReplayOptions>`: a new option in the typings fails this
// check until the app sets it, and the e2e test `npm_app` checks what it does).
import {
  addEvent,
  captureError,
  flush,
  identify,
  init,
  sessionUrl,
  setEnvironment,
  setFlags,
  setRelease,
  stop,
  type ReplayApi,
  type ReplayOptions,
  type ReplayStats,
} from 'replay-recorder';

declare global {
  interface Window {
    /** What the end-to-end test calls. */
    __app?: { flush: () => Promise<ReplayStats>; sessionUrl: () => Promise<string>; stop: () => Promise<void> };
    /** `true` once the recorder started, else the error. */
    __started?: true | string;
  }
}

function meta(name: string): string {
  const content = document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content;
  if (!content) throw new Error(`missing <meta name="${name}">`);
  return content;
}

const server = meta('replay-server').replace(/\/?$/, '/');

const options: Required<ReplayOptions> = {
  key: meta('replay-key'),
  endpoint: new URL('api/v1/ingest', server).href,
  flushIntervalMs: 1000,
  sampleRate: 1,
  mode: 'live',
  bufferSeconds: 30,
  networkAllowList: ['/data.json', /\/never-requested\//],
  console: ['warn', 'error'],
  pii: true,
  maskAllText: false,
  mask: '.secret-note',
  block: '.ad',
  ignore: '.no-record',
  unmask: '.public-field',
  watchdog: true,
  profiling: false,
  remoteSettings: true,
  canvas: false,
  canvasFps: 2,
  canvasBudget: 8 * 1024 * 1024,
  cpuBudget: 3,
  cpuBudgetWindow: 60,
};

// The typings refuse what the recorder would not understand.
// @ts-expect-error: no such mode
const badMode: ReplayOptions = { mode: 'sometimes' };
// @ts-expect-error: not a console level
const badLevel: ReplayOptions = { console: ['verbose'] };
// @ts-expect-error: the module entry needs the server's URL
const noServer: Parameters<typeof init>[0] = { key: 'k' };
void [badMode, badLevel, noServer];

/** The module entry's functions are those of `window.Replay`. */
const api: Pick<ReplayApi, 'identify' | 'flush'> = { identify, flush };

async function main(): Promise<void> {
  await init({ server, ...options });
  await api.identify('npm-user@example.com', { plan: 'pro' });
  await setRelease('3.1.4');
  await setEnvironment('staging');
  await setFlags({ checkout: 'v2' });
  await addEvent('sample-app-started', { items: 2 });
  await captureError(new Error('sample captured error'));
  console.log('console-log-not-captured');
  console.warn('console-warn-captured');
  const response = await fetch('data.json');
  const data: unknown = await response.json();
  const out = document.getElementById('out');
  if (out) out.textContent = JSON.stringify(data);
  window.__app = { flush: () => api.flush(), sessionUrl, stop };
}

main().then(
  () => {
    window.__started = true;
  },
  (e: unknown) => {
    window.__started = String(e);
  },
);
