// @ts-check
// Reads the times the mock reports at the end of a stream. Plain JavaScript with no k6 import, so that
// typecheck_test.go can run it under Node.js against the mock's real output.

/**
 * What the mock measured of one stream, in ms from when it had the request: the stream began (its head
 * went out), its first event was written, its last one was.
 * @typedef {object} MockTiming
 * @property {number} headMs
 * @property {number} firstEventMs
 * @property {number} serviceMs
 */

// The comment a stream ends with when the request sent x-mock-timing: 1 (bench/mockupstream's
// TimingComment). Loom relays SSE comments unchanged.
const TIMING_RE =
  /^: x-mock-timing head-ms=(\d+(?:\.\d+)?) first-event-ms=(\d+(?:\.\d+)?) service-ms=(\d+(?:\.\d+)?)$/m;

/**
 * The mock's timing comment in a stream's body, or undefined when there is none.
 * @param {string} body
 * @returns {MockTiming | undefined}
 */
export function mockTiming(body) {
  const m = TIMING_RE.exec(body);
  if (m === null || m[1] === undefined || m[2] === undefined || m[3] === undefined) {
    return undefined;
  }
  return { headMs: Number(m[1]), firstEventMs: Number(m[2]), serviceMs: Number(m[3]) };
}
