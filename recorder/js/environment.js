// Environment of the page view: browser and version, OS, device pixel ratio, device memory,
// CPU cores, connection type, language and time zone (the viewport travels with the page meta
// and resize events). User-Agent Client Hints are preferred where the browser has them.
import { S, now } from './state.js';

function fromUserAgent(ua) {
  /** @type {[string, RegExp][]} */
  const browsers = [
    ['Edge', /Edg(?:e|A|iOS)?\/([\d.]+)/], ['Opera', /OPR\/([\d.]+)/], ['Samsung Internet', /SamsungBrowser\/([\d.]+)/],
    ['Firefox', /(?:Firefox|FxiOS)\/([\d.]+)/], ['Headless Chrome', /HeadlessChrome\/([\d.]+)/],
    ['Chrome', /(?:Chrome|CriOS)\/([\d.]+)/], ['Safari', /Version\/([\d.]+).*Safari/],
  ];
  let browser = '';
  let version = '';
  for (const [name, re] of browsers) {
    const m = re.exec(ua);
    if (m) { browser = name; version = m[1]; break; }
  }
  /** @type {[string, RegExp][]} */
  const systems = [
    ['Windows', /Windows NT ([\d.]+)/], ['Android', /Android ([\d.]+)/], ['iOS', /(?:iPhone|iPad|iPod).* OS ([\d_]+)/],
    ['macOS', /Mac OS X ([\d_.]+)/], ['ChromeOS', /CrOS/], ['Linux', /Linux/],
  ];
  let os = '';
  for (const [name, re] of systems) {
    const m = re.exec(ua);
    if (m) { os = m[1] ? name + ' ' + m[1].replace(/_/g, '.') : name; break; }
  }
  return { browser, version, os };
}

function timezone() {
  // Temporal answers in ~0.1 ms; building an Intl.DateTimeFormat to ask it costs 30-50 ms of
  // main-thread CPU in a page that has not used Intl yet (it loads the locale's formatter).
  try {
    return (typeof Temporal === 'object' && Temporal.Now && Temporal.Now.timeZoneId())
      || Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch (_) {
    return '';
  }
}

/** Records the environment once per page view. */
export function recordEnvironment() {
  const ua = fromUserAgent(navigator.userAgent || '');
  const hints = navigator.userAgentData;
  if (hints && hints.platform && !ua.os) ua.os = hints.platform;
  const connection = navigator.connection ? String(navigator.connection.effectiveType || navigator.connection.type || '') : '';
  S.rec.environment(now(), ua.browser, ua.version, ua.os, Number(devicePixelRatio) || 1, Number(navigator.deviceMemory) || 0,
    Number(navigator.hardwareConcurrency) || 0, connection, String(navigator.language || ''), timezone());
}
