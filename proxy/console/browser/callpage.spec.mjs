// Drives a call page in the system's headless Chromium, as tenant A: the
// header answers the questions (model, status, tokens, cost, latency, time
// to first chunk, overhead, stream, attempts...), the timeline, the
// conversation and the folded raw attributes show, "copy as curl" copies a
// command that holds no key, the previous/next links step through the
// filtered list and "back to the list" keeps its filter, and no page logs
// an error. Run by ../callpage_browser_test.go, which sets:
//   CONSOLE_URL, CONSOLE_KEY_A, CALL_FAILED_OVER (a streamed call that
//   failed over to a second attempt, with captured content), CALL_REFUSED
//   (a streamed 404), CALL_NEWER (the streamed call newer than
//   CALL_FAILED_OVER), CONSOLE_FORBIDDEN (comma-separated strings of
//   tenant B's and secrets that must never show), CONSOLE_SCREENSHOTS.
import { env, finish, launch } from './spec.mjs';
import assert from 'node:assert/strict';
import path from 'node:path';

const base = env('CONSOLE_URL');
const keyA = env('CONSOLE_KEY_A');
const failedOver = env('CALL_FAILED_OVER');
const refused = env('CALL_REFUSED');
const newer = env('CALL_NEWER');
const forbidden = env('CONSOLE_FORBIDDEN').split(',');
const shots = env('CONSOLE_SCREENSHOTS');

const browser = await launch();
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  const step = (name) => console.log(`step: ${name}`);
  const fact = async (key) => (await page.locator(`#facts [data-field="${key}"] dd`).textContent()).trim();
  const noSecrets = async (where) => {
    const html = await page.content();
    for (const s of forbidden) assert.ok(!html.includes(s), `${where} never shows ${s}`);
  };

  step('log in as tenant A');
  await page.goto(`${base}/console/login`);
  await page.fill('#key', keyA);
  await Promise.all([page.waitForURL(`${base}/console/`), page.click('button[type=submit]')]);

  step('a failed-over streamed call, opened from the streamed calls');
  await page.goto(`${base}/console/calls/${failedOver}?stream=true`);
  const want = {
    model: 'gpt-4o-mini', response_model: 'gpt-4o-mini-2024-07-18', deployment: 'west', provider: 'openai',
    status: '200 OK · ok', input_tokens: '1,234', cached_tokens: '1,000', output_tokens: '5,678',
    reasoning_tokens: '64', cost: '0.004153500000 USD', latency: '2.10 s', ttfc: '180 ms', overhead: '1.2 ms',
    stream: 'yes', chunks: '42', usage_source: 'reported by the provider',
    attempts: '2 (1 failed before one served)', tenant: 'acme', key_id: 'acme-key', request_id: failedOver,
  };
  for (const [k, v] of Object.entries(want)) {
    assert.ok(await page.locator(`#facts [data-field="${k}"]`).isVisible(), `${k} is visible`);
    assert.equal(await fact(k), v, k);
  }
  assert.equal(await page.locator('#timeline svg rect.bar').count(), 3, 'SERVER and two attempts on the timeline');
  assert.ok(await page.locator('#timeline svg text.ttfc').isVisible(), 'the first-chunk mark');
  assert.ok((await page.locator('#timeline svg text.tick').count()) >= 3, 'a time axis');
  assert.equal(await page.locator('#attempts tbody tr').count(), 2);
  assert.ok(await page.locator('#conversation .text', { hasText: "What's the weather in Paris?" }).isVisible(), 'the prompt');
  assert.ok(await page.locator('#conversation pre.json', { hasText: '"city": "Paris",' }).isVisible(), 'tool arguments as JSON');
  assert.equal(await page.locator('#conversation details[open]').count(), 0, 'the long answer is folded');
  assert.equal(await page.locator('#raw details.span').count(), 3, 'a folded section per span');
  assert.ok(!(await page.locator('#raw table.attributes').first().isVisible()), 'raw attributes folded');
  await page.locator('#raw details.span summary').first().click();
  assert.ok(await page.locator('#raw table.attributes').first().isVisible(), 'unfolded on a click');
  await noSecrets('the call page');
  await page.screenshot({ path: path.join(shots, 'call.png'), fullPage: true });

  step('copy as curl');
  const curl = await page.locator('#curl-command').textContent();
  assert.ok(curl.includes('Bearer $OPENAI_API_KEY'), 'the key is a shell variable');
  assert.ok(curl.includes('"$OPENAI_BASE_URL/chat/completions"'), "the operation's path");
  for (const s of forbidden.concat([keyA, 'sk-'])) assert.ok(!curl.includes(s), `curl holds no ${s}`);
  const button = page.locator('button[data-copy-target="#curl-command"]');
  assert.ok(await button.isVisible(), 'the script shows the copy button');
  await button.click();
  await page.waitForFunction(() => document.querySelector('button[data-copy-target="#curl-command"]').textContent !== 'Copy');
  const label = await button.textContent();
  if (label === 'Copied') {
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), curl, 'the clipboard holds the command');
  } else {
    assert.equal(await page.evaluate(() => window.getSelection().toString()), curl, 'the command is selected');
  }

  step('older in the filter: the streamed 404');
  await Promise.all([page.waitForURL(`${base}/console/calls/${refused}?stream=true`), page.click('#older-call')]);
  assert.equal(await fact('stream'), 'yes', 'a streamed 404 says Stream: yes');
  assert.equal(await fact('status'), '404 Not Found · error');
  assert.equal(await fact('error'), 'model not found');
  assert.ok(await page.locator('#older-call-none').isVisible(), 'the oldest streamed call');
  await noSecrets('the refused call');
  await page.screenshot({ path: path.join(shots, 'call-refused.png'), fullPage: true });

  step('newer, twice');
  await Promise.all([page.waitForURL(`${base}/console/calls/${failedOver}?stream=true`), page.click('#newer-call')]);
  await Promise.all([page.waitForURL(`${base}/console/calls/${newer}?stream=true`), page.click('#newer-call')]);
  await noSecrets('the newer call');

  step('back to the filtered list');
  await Promise.all([page.waitForURL(`${base}/console/calls?stream=true`), page.click('#back-to-list')]);
} finally {
  await browser.close();
}
finish(errors, 'call page checks passed');
