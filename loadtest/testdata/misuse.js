// @ts-check
// Deliberate misuses of the k6 API. Each line marked "want error" must fail the type-check; if one stops
// failing, the check has gone soft (checkJs off, a looser option, types no longer found). TypeScript
// reports one error per object literal at most, so each misused option has an object of its own.

import { check } from 'k6';
import http from 'k6/http';
import { Rate, Trend } from 'k6/metrics';
import { Nope } from 'k6/metrics'; // want error: no such export

/** @type {import('k6/options').Options} */
export const options = {
  summaryTrendStat: ['p(99)'], // want error: summaryTrendStats misspelt
};

/** @type {import('k6/options').Scenario} */
export const typoKey = {
  executor: 'constant-arrival-rate',
  rate: 10,
  duration: '1m',
  preAllocatedVU: 10, // want error: preAllocatedVUs misspelt
};

/** @type {import('k6/options').Scenario} */
export const typoExecutor = {
  executor: 'constant-arrival-rat', // want error: no such executor
  rate: 10,
  duration: '1m',
  preAllocatedVUs: 10,
};

/** @type {import('k6/options').Scenario} */
export const missingDuration = { // want error: constant-arrival-rate needs a duration
  executor: 'constant-arrival-rate',
  rate: 10,
  preAllocatedVUs: 10,
};

/** @type {import('k6/options').Scenario} */
export const rampingWithRate = {
  executor: 'ramping-arrival-rate',
  rate: 10, // want error: ramping-arrival-rate takes stages, not rate
  stages: [{ duration: '1m', target: 10 }],
  preAllocatedVUs: 10,
};

/** @type {import('k6/options').Options} */
export const thresholdTypo = {
  thresholds: {
    loom_overhead_ms: [{ threshold: 'p(99)<20', abortOnFial: false }], // want error: abortOnFail misspelt
  },
};

/** @type {import('k6/options').Options} */
export const thresholdNotList = {
  thresholds: {
    http_req_failed: 'rate<0.001', // want error: thresholds are lists
  },
};

const trend = new Trend('t', true);
const rate = new Rate('r');

export default function () {
  const res = http.get(123); // want error: a URL is a string
  http.post('http://127.0.0.1:8080/v1', '{}', { header: { a: 'b' } }); // want error: headers misspelt
  http.post('http://127.0.0.1:8080/v1', '{}', { timeout: true }); // want error: a timeout is a string or number
  trend.add('12'); // want error: a Trend takes numbers
  trend.add(res.timings.ttfb); // want error: no such timing (waiting is time to first byte)
  rate.add(true, { tenant: 1 }); // want error: tag values are strings
  check(res, { 'status is 200': res.status === 200 }); // want error: a check is a function
  const n = __ENV.RATE * 2; // want error: __ENV values are strings, maybe unset
  trend.add(n);
  const h = res.headers['X-Loom-Overhead-Ms'];
  trend.add(Number(h.trim())); // want error: a header may be absent
  console.table([]); // want error: k6's console has no table
  fetch('http://127.0.0.1:8080/healthz'); // want error: k6 has no fetch; use k6/http
  [1, 2].at(0); // want error: newer than ES2020
}
