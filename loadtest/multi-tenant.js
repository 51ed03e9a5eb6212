// @ts-check
// Two tenants at once, each with its own key, model and scenario: tenant a (LOOM_API_KEY, LOOM_MODEL,
// default gpt-4o-mini) and tenant b (LOOM_API_KEY_B, LOOM_MODEL_B, default gpt-4o), RATE calls a second
// each (default 100) for DURATION (default 1m). Every sample carries a tenant tag, so each tenant has its
// own thresholds: one tenant's load must not spend the other's budget.

import http from 'k6/http';
import {
  API_KEY,
  API_KEY_B,
  CHAT_URL,
  HAS_SECOND_KEY,
  MODEL_A,
  MODEL_B,
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

const RATE = rate(100);
const LATENCY_MS = nonNegativeInt('MOCK_LATENCY_MS', 50);
const vus = vusFor(RATE, LATENCY_MS + 20);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    tenant_a: {
      executor: 'constant-arrival-rate',
      exec: 'tenantA',
      tags: { tenant: 'a' },
      rate: RATE,
      timeUnit: '1s',
      duration: duration('1m'),
      preAllocatedVUs: vus.preAllocatedVUs,
      maxVUs: vus.maxVUs,
    },
    tenant_b: {
      executor: 'constant-arrival-rate',
      exec: 'tenantB',
      tags: { tenant: 'b' },
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
    'loom_overhead_ms{tenant:a}': [OVERHEAD_P99],
    'gateway_overhead_ms{tenant:a}': [OVERHEAD_P99],
    'http_req_failed{tenant:a}': ['rate<0.001'],
    'call_errors{tenant:a}': ['rate<0.001'],
    'loom_overhead_ms{tenant:b}': [OVERHEAD_P99],
    'gateway_overhead_ms{tenant:b}': [OVERHEAD_P99],
    'http_req_failed{tenant:b}': ['rate<0.001'],
    'call_errors{tenant:b}': ['rate<0.001'],
  },
  summaryTrendStats: SUMMARY_TREND_STATS,
};

const A = {
  body: chatBody(MODEL_A),
  params: { headers: headers(API_KEY, { latencyMs: LATENCY_MS }), tags: { tenant: 'a' } },
  expect: { tags: { tenant: 'a' } },
};
const B = {
  body: chatBody(MODEL_B),
  params: { headers: headers(API_KEY_B, { latencyMs: LATENCY_MS }), tags: { tenant: 'b' } },
  expect: { tags: { tenant: 'b' } },
};

export function setup() {
  if (!HAS_SECOND_KEY) {
    console.warn('LOOM_API_KEY_B is not set: both tenants use LOOM_API_KEY, and differ only by model and tag');
  }
}

export function tenantA() {
  observe(http.post(CHAT_URL, A.body, A.params), A.expect);
}

export function tenantB() {
  observe(http.post(CHAT_URL, B.body, B.params), B.expect);
}

export const handleSummary = summaryHandler('multi-tenant');
