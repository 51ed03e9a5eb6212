// @ts-check
// What every scenario shares: where Loom is, which keys to use, how fast and how long to run, the request
// bodies, and the end-of-test summary. Everything here runs in k6's init context (once per VU), so it must
// stay cheap and never make a request.

/**
 * The target: an OpenAI-compatible API root ending in /v1, from OPENAI_BASE_URL, the line `make run`
 * prints (`export OPENAI_BASE_URL=http://127.0.0.1:<port>/v1`), or LOOM_BASE_URL, which overrides it
 * (the mock's root, for a direct baseline). There is no default: a guessed address (8080 is the usual
 * port, but devstack moves off a port that is taken) can load some other server and pass.
 */
export const BASE_URL = baseURL(env('LOOM_BASE_URL') ?? env('OPENAI_BASE_URL'));

/**
 * LOOM_DIRECT=1 marks a baseline run straight at the mock: there is no X-Loom-Overhead-Ms to read, so
 * its absence is not an error, and the mock takes any bearer key.
 */
export const DIRECT = ['1', 'true', 'yes'].includes((env('LOOM_DIRECT') ?? '').toLowerCase());

/** The tenant key. `make run` prints it as `export OPENAI_API_KEY=sk-loom-...`. */
export const API_KEY = env('LOOM_API_KEY') ?? env('OPENAI_API_KEY') ?? (DIRECT ? 'sk-direct-baseline' : '');

if (API_KEY === '') {
  // Thrown in the init context, this stops k6 before any load is sent.
  throw new Error(
    'set LOOM_API_KEY (or OPENAI_API_KEY) to a Loom key: `make run` prints `export OPENAI_API_KEY=sk-loom-...`',
  );
}

/**
 * A second tenant's key for multi-tenant.js. `make run` makes only the demo tenant, so without it both
 * "tenants" share the demo key and differ only by model and tag.
 */
export const API_KEY_B = env('LOOM_API_KEY_B') ?? API_KEY;

/** True when LOOM_API_KEY_B names a key of its own. */
export const HAS_SECOND_KEY = env('LOOM_API_KEY_B') !== undefined;

/** The demo models `make run` gives the demo tenant. */
export const MODEL_A = env('LOOM_MODEL') ?? 'gpt-4o-mini';
export const MODEL_B = env('LOOM_MODEL_B') ?? 'gpt-4o';

export const CHAT_URL = `${BASE_URL}/chat/completions`;

/**
 * The arrival rate (iterations per second) from RATE, else fallback.
 * @param {number} fallback
 * @returns {number}
 */
export function rate(fallback) {
  return positiveInt('RATE', fallback);
}

/**
 * A k6 duration ("30s", "5m", "1h30m") from DURATION, else fallback.
 * @param {string} fallback
 * @returns {string}
 */
export function duration(fallback) {
  return durationEnv('DURATION', fallback);
}

/**
 * A positive integer from the environment variable name, else fallback. Anything else stops the test:
 * a typo must not silently run a different load.
 * @param {string} name
 * @param {number} fallback
 * @returns {number}
 */
export function positiveInt(name, fallback) {
  const v = env(name);
  if (v === undefined) {
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) {
    throw new Error(`${name}=${v}: want a positive integer`);
  }
  return n;
}

/**
 * A non-negative integer from the environment variable name, else fallback.
 * @param {string} name
 * @param {number} fallback
 * @returns {number}
 */
export function nonNegativeInt(name, fallback) {
  const v = env(name);
  if (v === undefined) {
    return fallback;
  }
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    throw new Error(`${name}=${v}: want an integer >= 0`);
  }
  return n;
}

/**
 * A k6 duration from the environment variable name, else fallback.
 * @param {string} name
 * @param {string} fallback
 * @returns {string}
 */
export function durationEnv(name, fallback) {
  const v = env(name);
  if (v === undefined) {
    return fallback;
  }
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(v)) {
    throw new Error(`${name}=${v}: want a k6 duration such as 30s, 5m or 1h30m`);
  }
  return v;
}

/**
 * VUs for an arrival-rate scenario, by Little's law: rate × the time one call is expected to take, with
 * room to spare. preAllocatedVUs is generous on purpose: when an arrival-rate executor has no idle VU it
 * drops the iteration (dropped_iterations), even while it starts another VU in the background.
 * @param {number} perSecond the peak arrival rate
 * @param {number} expectedMs how long one iteration is expected to take
 * @returns {{ preAllocatedVUs: number, maxVUs: number }}
 */
export function vusFor(perSecond, expectedMs) {
  const busy = Math.ceil((perSecond * expectedMs) / 1000);
  const preAllocatedVUs = Math.max(10, busy * 3);
  return { preAllocatedVUs, maxVUs: Math.max(100, preAllocatedVUs * 5) };
}

/**
 * The trend statistics every summary shows; the defaults stop at p(95), and the budget is on p(99).
 * @type {string[]}
 */
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'p(99.9)', 'count'];

/**
 * The overhead budget: every scenario holds loom_overhead_ms and gateway_overhead_ms (and each tenant's)
 * to it. One literal, so no scenario keeps an older budget; typecheck_test.go reads it here and fails if it
 * is looser than p99 under 20 ms.
 */
export const OVERHEAD_P99 = 'p(99)<20';

/**
 * The tail budget of the streaming scenarios: gateway_overhead_ms and ttfc_overhead_ms at p99.9. Past
 * p99 a busy machine's scheduler and garbage-collector pauses show, so it is looser than OVERHEAD_P99,
 * but bounded: typecheck_test.go fails if it is looser than p99.9 under 50 ms.
 */
export const OVERHEAD_P999 = 'p(99.9)<50';

/**
 * The x-mock-* controls a request sends; Loom forwards them to the mock (forward_headers in .loom/loom.yaml).
 * @typedef {object} MockControls
 * @property {number} [latencyMs] x-mock-latency-ms: non-streaming latency (streams: delay before the head)
 * @property {number} [ttftMs] x-mock-ttft-ms: delay between a stream's head and its first event
 * @property {number} [chunks] x-mock-chunks: content chunks (completion tokens) per choice
 * @property {number} [chunkDelayMs] x-mock-chunk-delay-ms: delay between stream events
 * @property {number} [status] x-mock-status: answer with this status instead
 * @property {boolean} [timing] x-mock-timing: a stream ends with the times the mock measured (an SSE
 *   comment; see mockTiming in lib/metrics.js), which the stream measures need
 */

/**
 * The request headers for one call with key.
 * @param {string} key
 * @param {MockControls} mock
 * @returns {{ [name: string]: string }}
 */
export function headers(key, mock) {
  /** @type {{ [name: string]: string }} */
  const h = {
    Authorization: `Bearer ${key}`,
    'Content-Type': 'application/json',
  };
  if (mock.latencyMs !== undefined) h['x-mock-latency-ms'] = String(mock.latencyMs);
  if (mock.ttftMs !== undefined) h['x-mock-ttft-ms'] = String(mock.ttftMs);
  if (mock.chunks !== undefined) h['x-mock-chunks'] = String(mock.chunks);
  if (mock.chunkDelayMs !== undefined) h['x-mock-chunk-delay-ms'] = String(mock.chunkDelayMs);
  if (mock.status !== undefined) h['x-mock-status'] = String(mock.status);
  if (mock.timing === true) h['x-mock-timing'] = '1';
  return h;
}

// About 1 KB of prompt, the size of a short chat turn with a system prompt. Built once per VU.
const SYSTEM_PROMPT =
  'You are a concise assistant for a logistics company. Answer in plain English, in at most three ' +
  'sentences, and say so when you do not know. Never invent tracking numbers, prices or delivery dates.';
const USER_PROMPT = padTo(
  'A parcel left the Rotterdam depot on Monday and was scanned in Antwerp on Tuesday, but the customer ' +
    'portal still shows it in Rotterdam. List the likely reasons, and what the customer should do next. ',
  1024 - SYSTEM_PROMPT.length - 112, // the JSON around the two messages
);

/**
 * A non-streaming chat completion body of about 1 KB.
 * @param {string} model
 * @returns {string}
 */
export function chatBody(model) {
  return JSON.stringify({
    model,
    messages: [
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: USER_PROMPT },
    ],
    max_tokens: 64,
  });
}

/**
 * The same chat as chatBody, streamed (without stream_options: Loom asks the upstream for usage itself and
 * removes the usage chunk, which is the path most clients take).
 * @param {string} model
 * @returns {string}
 */
export function streamBody(model) {
  return JSON.stringify({
    model,
    messages: [
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: USER_PROMPT },
    ],
    max_tokens: 64,
    stream: true,
  });
}

/**
 * What k6 passes to handleSummary (see "Custom summary" in the k6 docs). Only the parts read here are
 * typed; the whole object is written to the JSON file as it is.
 * @typedef {object} SummaryMetric
 * @property {string} type "counter", "gauge", "rate" or "trend"
 * @property {string} contains "default", "time" or "data"
 * @property {{ [stat: string]: number }} values
 * @property {{ [expression: string]: { ok: boolean } }} [thresholds]
 *
 * @typedef {object} SummaryData
 * @property {{ [name: string]: SummaryMetric }} metrics
 * @property {{ testRunDurationMs?: number }} [state]
 */

/**
 * The handleSummary of a scenario: the whole summary as JSON, to SUMMARY_JSON or
 * loadtest/results/<scenario>.json (relative to where k6 runs, so run k6 from the repository root), and a
 * short text summary on stdout. Exporting handleSummary replaces k6's own end-of-test summary.
 * @param {string} scenario the file's name without .js
 * @returns {(data: SummaryData) => { [output: string]: string }}
 */
export function summaryHandler(scenario) {
  const path = env('SUMMARY_JSON') ?? `loadtest/results/${scenario}.json`;
  return (data) => ({
    stdout: textSummary(scenario, path, data),
    [path]: JSON.stringify(data, null, 2),
  });
}

/**
 * @param {string} scenario
 * @param {string} path
 * @param {SummaryData} data
 * @returns {string}
 */
function textSummary(scenario, path, data) {
  const lines = [``, `loom ${scenario} against ${BASE_URL}${DIRECT ? ' (direct baseline)' : ''}`];
  const seconds = (data.state?.testRunDurationMs ?? 0) / 1000;
  lines.push(`  ran ${seconds.toFixed(1)}s`);

  /** @type {Array<[string, string]>} */
  const rows = [];
  for (const name of Object.keys(data.metrics).sort()) {
    const m = data.metrics[name];
    if (m === undefined || !SHOWN.test(name)) continue;
    rows.push([name, formatMetric(m)]);
  }
  const width = Math.max(0, ...rows.map(([n]) => n.length)) + 2;
  for (const [name, value] of rows) {
    lines.push(`  ${name.padEnd(width, '.')} ${value}`);
  }

  let failed = 0;
  lines.push('  thresholds:');
  for (const name of Object.keys(data.metrics).sort()) {
    const t = data.metrics[name]?.thresholds;
    if (t === undefined) continue;
    for (const [expr, r] of Object.entries(t)) {
      if (!r.ok) failed++;
      lines.push(`    ${r.ok ? 'ok  ' : 'FAIL'} ${name} ${expr}`);
    }
  }
  lines.push(failed === 0 ? '  all thresholds passed' : `  ${failed} threshold(s) FAILED`);
  lines.push(`  full summary: ${path}`, '');
  return lines.join('\n');
}

// The metrics the text summary shows (tagged sub-metrics, such as loom_overhead_ms{tenant:a}, included).
const SHOWN =
  /^(loom_overhead_ms|gateway_overhead_ms|ttfc_ms|ttfc_overhead_ms|call_errors|stream_events|http_req_duration|http_req_failed|http_reqs|dropped_iterations|checks)(\{.*\})?$/;

/**
 * @param {SummaryMetric} m
 * @returns {string}
 */
function formatMetric(m) {
  const v = m.values;
  switch (m.type) {
    case 'trend':
      return ['avg', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max']
        .map((s) => `${s}=${fmt(v[s])}`)
        .join(' ');
    case 'rate':
      return `${fmt((v['rate'] ?? 0) * 100)}% (${v['passes'] ?? 0} of ${(v['passes'] ?? 0) + (v['fails'] ?? 0)})`;
    case 'counter':
      return `${v['count'] ?? 0} (${fmt(v['rate'])}/s)`;
    default:
      return Object.entries(v)
        .map(([k, x]) => `${k}=${fmt(x)}`)
        .join(' ');
  }
}

/**
 * @param {number | undefined} x
 * @returns {string}
 */
function fmt(x) {
  return x === undefined ? '-' : x.toFixed(3);
}

/**
 * An environment variable (k6 passes the shell's, and -e NAME=value), undefined when unset or empty.
 * @param {string} name
 * @returns {string | undefined}
 */
export function env(name) {
  const v = __ENV[name];
  return v === undefined || v === '' ? undefined : v;
}

/**
 * The API root from url, without a trailing slash. Unset, or not an http(s) URL ending in /v1, it stops
 * k6 in the init context, before any load is sent (k6 exits 107, as for any script error there).
 * @param {string | undefined} url
 * @returns {string}
 */
export function baseURL(url) {
  if (url === undefined) {
    throw new Error(
      'set OPENAI_BASE_URL to Loom\'s API root: paste the `export OPENAI_BASE_URL=http://127.0.0.1:<port>/v1` ' +
        'line `make run` printed (or set LOOM_BASE_URL, e.g. to the mock\'s root for a direct baseline)',
    );
  }
  const root = url.endsWith('/') ? url.slice(0, -1) : url;
  if (!/^https?:\/\/[^/\s]+(\/[^\s]*)?\/v1$/.test(root)) {
    throw new Error(`base URL ${url}: want an http(s) API root ending in /v1, such as http://127.0.0.1:8080/v1`);
  }
  return root;
}

/**
 * s repeated up to n characters.
 * @param {string} s
 * @param {number} n
 * @returns {string}
 */
function padTo(s, n) {
  let out = s;
  while (out.length < n) out += s;
  return out.slice(0, n);
}
