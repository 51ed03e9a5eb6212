// @ts-check
// A soak: RATE calls a second (default 50) for DURATION (default 30m), one in five streamed, to catch what
// only time shows: leaks, a growing span queue, latency creeping up. A soak that starts failing stops after
// its first two minutes instead of running on for half an hour.

import exec from 'k6/execution';
import http from 'k6/http';
import {
  API_KEY,
  CHAT_URL,
  MODEL_A,
  OVERHEAD_P99,
  OVERHEAD_P999,
  SUMMARY_TREND_STATS,
  chatBody,
  duration,
  headers,
  nonNegativeInt,
  rate,
  streamBody,
  summaryHandler,
  vusFor,
} from './lib/config.js';
import { observe } from './lib/metrics.js';

const RATE = rate(50);
const LATENCY_MS = nonNegativeInt('MOCK_LATENCY_MS', 50);
const CHUNKS = 20;
const CHUNK_DELAY_MS = 5;
const vus = vusFor(RATE, Math.max(LATENCY_MS, (CHUNKS + 4) * CHUNK_DELAY_MS) + 20);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    soak: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: duration('30m'),
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
    http_req_failed: [{ threshold: 'rate<0.001', abortOnFail: true, delayAbortEval: '2m' }],
    call_errors: [{ threshold: 'rate<0.001', abortOnFail: true, delayAbortEval: '2m' }],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const UNARY = { body: chatBody(MODEL_A), params: { headers: headers(API_KEY, { latencyMs: LATENCY_MS }) } };
const STREAM = {
  body: streamBody(MODEL_A),
  params: { headers: headers(API_KEY, { ttftMs: 0, chunks: CHUNKS, chunkDelayMs: CHUNK_DELAY_MS, timing: true }) },
};

export default function () {
  if (exec.scenario.iterationInTest % 5 === 0) {
    observe(http.post(CHAT_URL, STREAM.body, STREAM.params), { streamChunks: CHUNKS });
  } else {
    observe(http.post(CHAT_URL, UNARY.body, UNARY.params), {});
  }
}

export const handleSummary = summaryHandler('soak');
