// Drives the calls list in the system's headless Chromium, as tenant A:
// filter by model (the form), page Older and back Newer with the filter
// kept, open a call from a filtered page and come back, download the
// filtered CSV, and no console or page error anywhere. Run by
// ../calls_browser_test.go, which starts Postgres and the console and sets:
//   CONSOLE_URL, CONSOLE_KEY_A, CONSOLE_MODEL (the model filtered on),
//   CONSOLE_MODEL_CALLS (how many of A's calls have it),
//   CONSOLE_FORBIDDEN (comma-separated strings of B's that must never show),
//   CONSOLE_SCREENSHOTS (a directory).
import { env, finish, launch } from './spec.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';

const base = env('CONSOLE_URL');
const keyA = env('CONSOLE_KEY_A');
const model = env('CONSOLE_MODEL');
const modelCalls = Number(env('CONSOLE_MODEL_CALLS'));
const forbidden = env('CONSOLE_FORBIDDEN').split(',');
const shots = env('CONSOLE_SCREENSHOTS');
const pageSize = 3;

const browser = await launch();
const errors = [];
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  const step = (name) => console.log(`step: ${name}`);
  const rows = () => page.locator('#calls tbody tr[data-trace]').evaluateAll((trs) => trs.map((tr) => tr.dataset.trace));
  const models = () => page.locator('#calls tbody tr[data-trace] td:nth-child(3)').allTextContents();
  const keepsFilter = () => {
    const u = new URL(page.url());
    assert.equal(u.searchParams.get('model'), model, `the filter survives: ${page.url()}`);
    assert.equal(u.searchParams.get('n'), String(pageSize), `the page size survives: ${page.url()}`);
  };

  step('log in as tenant A');
  await page.goto(`${base}/console/login`);
  await page.fill('#key', keyA);
  await Promise.all([page.waitForURL(`${base}/console/`), page.click('button[type=submit]')]);

  step('filter by model');
  await page.goto(`${base}/console/calls?n=${pageSize}`);
  assert.deepEqual(await page.locator('#calls thead th').allTextContents(), ['Time (UTC)', 'Key', 'Model', 'Provider',
    'Stream', 'Status', 'Input tokens', 'Output tokens', 'Cost', 'Duration (ms)', 'TTFC (ms)', 'Overhead (ms)']);
  await page.fill('form.filters input[name=model]', model);
  await Promise.all([page.waitForURL(/model=/), page.click('form.filters button')]);
  keepsFilter();
  assert.equal(await page.inputValue('form.filters input[name=model]'), model, 'the form shows the filter');

  step('page Older to the end');
  const pages = [await rows()];
  assert.equal(pages[0].length, pageSize);
  while (await page.locator('#older').count()) {
    await Promise.all([page.waitForURL(/after=/), page.click('#older')]);
    keepsFilter();
    for (const m of await models()) assert.equal(m, model, 'every row has the model');
    pages.push(await rows());
  }
  const all = pages.flat();
  assert.equal(all.length, modelCalls, 'every call with the model, once');
  assert.equal(new Set(all).size, all.length, 'no call twice');
  await page.screenshot({ path: path.join(shots, 'calls-last-page.png'), fullPage: true });

  step('page Newer back to the start');
  for (let i = pages.length - 2; i >= 0; i--) {
    await Promise.all([page.waitForURL(/before=/), page.click('#newer')]);
    keepsFilter();
    assert.deepEqual(await rows(), pages[i], `page ${i} again, the same calls`);
  }
  assert.equal(await page.locator('#newer').count(), 0, 'no Newer on the newest page');

  step('open a call and come back');
  const listURL = page.url();
  const trace = pages[0][1];
  await Promise.all([page.waitForURL(new RegExp(`/console/calls/${trace}\\?`)), page.click(`tr[data-trace="${trace}"] td.time a`)]);
  assert.equal(new URL(page.url()).searchParams.get('model'), model, 'the call page gets the filter');
  await page.goBack();
  assert.equal(page.url(), listURL);
  assert.deepEqual(await rows(), pages[0]);

  step('status colours');
  await page.goto(`${base}/console/calls?n=50`);
  assert.ok(await page.locator('#calls td.status.s5xx').count() >= 1, 'the failed call is a 5xx');
  assert.ok(await page.locator('#calls td.status.ok').count() >= 1, 'ok calls');
  await page.screenshot({ path: path.join(shots, 'calls.png'), fullPage: true });
  const html = await page.content();
  for (const s of forbidden) assert.ok(!html.includes(s), `B's ${s} never shows`);

  step('download the filtered CSV');
  await page.goto(`${base}/console/calls?n=${pageSize}&model=${encodeURIComponent(model)}`);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
  assert.match(download.suggestedFilename(), /^loom-calls-\d{8}-\d{6}\.csv$/);
  const csv = await fs.readFile(await download.path(), 'utf8');
  const lines = csv.trim().split(/\r?\n/);
  assert.match(lines[0], /^Time \(UTC\),Trace ID,Tenant,Key,Model,/);
  assert.equal(lines.length - 1, modelCalls, 'the CSV has the filtered calls, all pages');
  for (const t of all) assert.ok(csv.includes(t), `the CSV has ${t}`);
  for (const s of forbidden) assert.ok(!csv.includes(s), `B's ${s} is not in the CSV`);
} finally {
  await browser.close();
}
finish(errors, 'calls checks passed');
