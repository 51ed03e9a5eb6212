// @ts-check
// The custom metrics every scenario records, and the one function that reads them off a response. The
// thresholds on them live in each scenario's options, in plain sight (typecheck_test.go checks they are there).

import { check } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import { DIRECT } from './config.js';
import { mockTiming } from './timing.js';

/**
 * Loom's own time per call, from its X-Loom-Overhead-Ms response header: the whole call minus the time
 * spent waiting on the upstream (for a stream, up to the upstream's response head). Absent in a direct
 * baseline run.
 */
export const loomOverhead = new Trend('loom_overhead_ms', true);

/**
 * What the client saw, minus the mock's own time: everything that is not the simulated model, which is
 * Loom, both network hops and k6's own handling. For a non-streaming call the mock's time is what it
 * deliberately waited (x-mock-service-ms: one timer, which overshoots by microseconds). For a stream it
 * is what the mock measured from the request to its last event (mockTiming): a stream waits twenty-odd
 * times, each timer overshoots a little, and counting the planned waits would put that overshoot, as
 * large as Loom's own share, in this number. The same number from a direct run (LOOM_DIRECT=1) is the
 * floor without Loom.
 */
export const gatewayOverhead = new Trend('gateway_overhead_ms', true);

/**
 * Streams: the time to the first chunk (not to the response head), from the start of the request. k6's
 * http module is not streaming: it returns once the whole body is in, and its only in-flight timing is the
 * time to the first byte (res.timings.sending + waiting). Through Loom the first byte is the first chunk:
 * Loom sends its head only with the upstream's first event (until then it may still fail over). Straight
 * at the mock (LOOM_DIRECT=1) the head goes out first, so the gap the mock measured between its head and
 * its first event is added.
 */
export const ttfc = new Trend('ttfc_ms', true);

/**
 * Streams: ttfc_ms minus the mock's own time to its first event (mockTiming): the gateway's share of the
 * wait for the first chunk, which is what a streaming client feels of Loom.
 */
export const ttfcOverhead = new Trend('ttfc_overhead_ms', true);

/** Calls that failed any check: a status other than 200, a missing timing header, a short stream. */
export const callErrors = new Rate('call_errors');

/** SSE data events received (the [DONE] line included), to see that streams came in whole. */
export const streamEvents = new Counter('stream_events');

const LOOM_HEADER = 'X-Loom-Overhead-Ms';
const SERVICE_HEADER = 'X-Mock-Service-Ms';

/**
 * @typedef {object} Expect
 * @property {number} [streamChunks] the call streamed this many content chunks (x-mock-chunks), with
 *   x-mock-timing set (headers(key, { timing: true, ... }))
 * @property {{ [name: string]: string }} [tags] added to every sample, such as { tenant: 'a' }
 */

/**
 * Checks res and records its metrics. Returns whether every check passed.
 * @param {import('k6/http').Response} res
 * @param {Expect} expect
 * @returns {boolean}
 */
export function observe(res, expect) {
  const tags = expect.tags ?? {};
  const loomMs = headerNumber(res, LOOM_HEADER);
  const serviceMs = headerNumber(res, SERVICE_HEADER);
  const body = typeof res.body === 'string' ? res.body : '';

  /** @type {{ [name: string]: (r: import('k6/http').Response) => boolean }} */
  const checks = {
    'status is 200': (r) => r.status === 200,
    'has x-mock-service-ms': () => serviceMs !== undefined,
  };
  if (!DIRECT) {
    checks['has X-Loom-Overhead-Ms'] = () => loomMs !== undefined;
  }

  const chunks = expect.streamChunks;
  /** @type {import('./timing.js').MockTiming | undefined} */
  let timing;
  if (chunks === undefined) {
    checks['body is a chat.completion'] = () => body.includes('"chat.completion"');
  } else {
    // One event for the role, one per chunk, one for finish_reason, then data: [DONE]. Loom removes the
    // usage chunk it asked for on the client's behalf.
    const events = body.split('data: ').length - 1;
    streamEvents.add(events, tags);
    checks['stream has every chunk'] = () => events >= chunks + 3;
    checks['stream ends with [DONE]'] = () => body.includes('data: [DONE]');
    timing = mockTiming(body);
    checks['stream reports x-mock-timing'] = () => timing !== undefined;
  }

  const ok = check(res, checks, tags);
  callErrors.add(!ok, tags);
  if (loomMs !== undefined) {
    loomOverhead.add(loomMs, tags);
  }
  if (timing !== undefined) {
    const firstByte = res.timings.sending + res.timings.waiting;
    const firstChunk = DIRECT ? firstByte + Math.max(0, timing.firstEventMs - timing.headMs) : firstByte;
    ttfc.add(firstChunk, tags);
    ttfcOverhead.add(Math.max(0, firstChunk - timing.firstEventMs), tags);
    gatewayOverhead.add(Math.max(0, res.timings.duration - timing.serviceMs), tags);
  } else if (serviceMs !== undefined && chunks === undefined) {
    gatewayOverhead.add(Math.max(0, res.timings.duration - serviceMs), tags);
  }
  return ok;
}

/**
 * A response header as a number, or undefined when absent or not a number. k6 gives header names in Go's
 * canonical form (X-Mock-Service-Ms); the loop is for any other casing.
 * @param {import('k6/http').Response} res
 * @param {string} name
 * @returns {number | undefined}
 */
export function headerNumber(res, name) {
  let v = res.headers[name];
  if (v === undefined) {
    const want = name.toLowerCase();
    for (const [k, x] of Object.entries(res.headers)) {
      if (k.toLowerCase() === want) {
        v = x;
        break;
      }
    }
  }
  if (v === undefined || v === '') {
    return undefined;
  }
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}
