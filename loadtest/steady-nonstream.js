// @ts-check
// Steady non-streaming load: RATE chat completions a second (default 200) for DURATION (default 1m), open
// loop, each answered by the mock after MOCK_LATENCY_MS (default 50). Loom's overhead must stay under its
// budget at that rate.

import http from 'k6/http';
import {
  API_KEY,
  CHAT_URL,
  MODEL_A,
  OVERHEAD_P99,
  SUMMARY_TREND_STATS,
  chatBody,
  duration,
  headers,
  nonNegativeInt,
  rate,
  summaryHandler,
  vusFor,
} from './lib/config.js';
import { observe } from './lib/metrics.js';

const RATE = rate(200);
const LATENCY_MS = nonNegativeInt('MOCK_LATENCY_MS', 50);
const vus = vusFor(RATE, LATENCY_MS + 20);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    steady_nonstream: {
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

const BODY = chatBody(MODEL_A);
const PARAMS = { headers: headers(API_KEY, { latencyMs: LATENCY_MS }) };

export default function () {
  observe(http.post(CHAT_URL, BODY, PARAMS), {});
}

export const handleSummary = summaryHandler('steady-nonstream');
