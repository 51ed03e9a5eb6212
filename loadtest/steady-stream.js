// @ts-check
// Steady streaming load: RATE streamed chat completions a second (default 100) for DURATION (default 1m),
// each CHUNKS content chunks (default 20) CHUNK_DELAY_MS apart (default 5), open loop. Records the time to
// first chunk (ttfc_ms; see lib/metrics.js for what k6 can and cannot see of a stream).

import http from 'k6/http';
import {
  API_KEY,
  CHAT_URL,
  MODEL_A,
  OVERHEAD_P99,
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
// role, chunks, finish, usage and [DONE], one delay apart
const vus = vusFor(RATE, (CHUNKS + 4) * CHUNK_DELAY_MS + 20);

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
    gateway_overhead_ms: [{ threshold: OVERHEAD_P99, abortOnFail: false }],
    http_req_failed: ['rate<0.001'],
    call_errors: ['rate<0.001'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const BODY = streamBody(MODEL_A);
const PARAMS = {
  headers: headers(API_KEY, { ttftMs: 0, chunks: CHUNKS, chunkDelayMs: CHUNK_DELAY_MS }),
};

export default function () {
  observe(http.post(CHAT_URL, BODY, PARAMS), { streamChunks: CHUNKS });
}

export const handleSummary = summaryHandler('steady-stream');
