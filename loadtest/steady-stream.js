// @ts-check
// Steady streaming load: RATE streamed chat completions a second (default 100) for DURATION (default 1m),
// each CHUNKS content chunks (default 20) CHUNK_DELAY_MS apart (default 5), the first TTFT_MS after the
// head (default 20), open loop. Loom's share is measured against the times the mock reports for each
// stream (x-mock-timing), not its planned waits: the time to the first chunk (ttfc_ms), the gateway's
// share of it (ttfc_overhead_ms) and of the whole stream (gateway_overhead_ms), at p99 and p99.9.

import http from 'k6/http';
import {
  API_KEY,
  CHAT_URL,
  MODEL_A,
  OVERHEAD_P99,
  OVERHEAD_P999,
  SUMMARY_TREND_STATS,
  duration,
  headers,
  nonNegativeInt,
  positiveInt,
  rate,
  streamBody,
  summaryHandler,
  vusFor,
} from './lib/config.js';
import { observe } from './lib/metrics.js';

const RATE = rate(100);
const CHUNKS = positiveInt('CHUNKS', 20);
const CHUNK_DELAY_MS = nonNegativeInt('CHUNK_DELAY_MS', 5);
const TTFT_MS = nonNegativeInt('TTFT_MS', 20);
// the first event, then role, chunks, finish, usage and [DONE], one delay apart
const vus = vusFor(RATE, TTFT_MS + (CHUNKS + 4) * CHUNK_DELAY_MS + 20);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    steady_stream: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: duration('1m'),
      preAllocatedVUs: vus.preAllocatedVUs,
      maxVUs: vus.maxVUs,
    },
  },
  thresholds: {
    loom_overhead_ms: [{ threshold: OVERHEAD_P99, abortOnFail: false }],
    gateway_overhead_ms: [
      { threshold: OVERHEAD_P99, abortOnFail: false },
      { threshold: OVERHEAD_P999, abortOnFail: false },
    ],
    ttfc_overhead_ms: [
      { threshold: OVERHEAD_P99, abortOnFail: false },
      { threshold: OVERHEAD_P999, abortOnFail: false },
    ],
    http_req_failed: ['rate<0.001'],
    call_errors: ['rate<0.001'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const BODY = streamBody(MODEL_A);
const PARAMS = {
  headers: headers(API_KEY, { ttftMs: TTFT_MS, chunks: CHUNKS, chunkDelayMs: CHUNK_DELAY_MS, timing: true }),
};

export default function () {
  observe(http.post(CHAT_URL, BODY, PARAMS), { streamChunks: CHUNKS });
}

export const handleSummary = summaryHandler('steady-stream');
