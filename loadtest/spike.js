// @ts-check
// A spike: RATE calls a second (default 20) for 30s, a 10s climb to PEAK (default 400), PEAK held for
// DURATION (default 1m), a 10s fall back to RATE, and 30s more at RATE to see Loom settle. Non-streaming,
// MOCK_LATENCY_MS (default 50) each. The overhead budget holds through the spike, not just around it.

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
  positiveInt,
  rate,
  summaryHandler,
  vusFor,
} from './lib/config.js';
import { observe } from './lib/metrics.js';

const BASE = rate(20);
const PEAK = positiveInt('PEAK', 400);
const LATENCY_MS = nonNegativeInt('MOCK_LATENCY_MS', 50);
const vus = vusFor(Math.max(BASE, PEAK), LATENCY_MS + 20);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    spike: {
      executor: 'ramping-arrival-rate',
      startRate: BASE,
      timeUnit: '1s',
      stages: [
        { duration: '30s', target: BASE },
        { duration: '10s', target: PEAK },
        { duration: duration('1m'), target: PEAK },
        { duration: '10s', target: BASE },
        { duration: '30s', target: BASE },
      ],
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

export const handleSummary = summaryHandler('spike');
