// Drives the console's Usage page in the system's headless Chromium: as the
// admin, the page groups by tenant over the last day, then 7 days, with
// charts that have axes and hover values; changing the grouping and the range reloads it with
// the new numbers; the CSV download has the page's filters in its name and
// the exact sums in its rows; as tenant A, only A's usage shows. Any
// console error or page error fails the run. Run by ../usage_browser_test.go,
// which starts Postgres and the console and sets:
//   USAGE_URL, USAGE_ADMIN_TOKEN, USAGE_KEY_A, USAGE_FORBIDDEN (strings of
//   tenant B that A must never see, separated by |), USAGE_SCREENSHOTS
//   (a directory).
import { env, finish, launch } from './spec.mjs';
import assert from 'node:assert/strict';
import fs from 'node:fs/promises';
import path from 'node:path';

const base = env('USAGE_URL');
const adminToken = env('USAGE_ADMIN_TOKEN');
const keyA = env('USAGE_KEY_A');
const forbidden = env('USAGE_FORBIDDEN').split('|');
const shots = env('USAGE_SCREENSHOTS');

const browser = await launch();
const errors = [];
const step = (name) => console.log(`step: ${name}`);
const groups = (page) => page.locator('#usage tbody tr[data-group]').evaluateAll((trs) => trs.map((tr) => tr.dataset.group));

async function login(page, secret) {
  await page.goto(`${base}/console/login`);
  await page.fill('#key', secret);
  await Promise.all([page.waitForURL(`${base}/console/`), page.click('button[type=submit]')]);
}

try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() === 'error') errors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));

  step('admin: usage by tenant, the last day by default');
  await login(page, adminToken);
  await Promise.all([page.waitForURL(`${base}/console/usage`), page.click('nav a[data-nav=usage]')]);
  assert.equal(await page.inputValue('select[name=group]'), 'tenant');
  assert.equal(await page.inputValue('select[name=range]'), '24h');
  assert.deepEqual((await groups(page)).sort(), ['acme', 'globex']);
  assert.doesNotMatch(await page.locator('#usage-total').textContent(), /USD/, 'no priced call in the last day');

  step('admin: the last 7 days');
  await page.selectOption('select[name=range]', '7d');
  await Promise.all([page.waitForURL(/range=7d/), page.click('#usage-form button[type=submit]')]);
  assert.deepEqual((await groups(page)).sort(), ['acme', 'globex']);
  const total = await page.locator('#usage-total').textContent();
  assert.match(total, /1,234\.800171 USD/, 'the total spend, exact, with separators and its currency');
  assert.match(total, /0\.50 EUR/, 'each currency apart');
  assert.ok(await page.locator('#usage-unpriced').isVisible(), 'unpriced calls are said to be');
  for (const id of ['spend', 'tokens']) {
    const chart = page.locator(`#usage-chart-${id} svg`);
    assert.ok(await chart.isVisible(), `the ${id} chart`);
    assert.ok((await chart.locator('.usage-xaxis text').count()) >= 3, `the ${id} chart has a time axis`);
    assert.ok((await chart.locator('.usage-yaxis text').count()) >= 3, `the ${id} chart has a value axis`);
    assert.ok((await chart.locator('polyline.usage-line').count()) >= 1, `the ${id} chart has a line`);
  }
  assert.equal(await page.locator('#usage-chart-spend .usage-unit').first().textContent(), 'EUR, USD');
  assert.equal(await page.locator('#usage-chart-tokens .usage-unit').first().textContent(), 'tokens');
  // A hover column's title is what the browser shows on hover: the bucket
  // and every series' value there.
  // Its hour also holds acme's failed-over and formula calls: 1000 + 7 + 10 + 1.
  const busy = page.locator('#usage-chart-tokens rect.usage-hover', { has: page.locator('title', { hasText: 'input: 1,018 tokens' }) });
  assert.equal(await busy.count(), 1, "the bucket of globex's big call");
  await busy.hover();
  const tip = await busy.locator('title').textContent();
  assert.match(tip, /UTC \(hour\)\ninput: 1,018 tokens\noutput: 105 tokens\n/);
  await page.screenshot({ path: path.join(shots, 'usage-admin.png'), fullPage: true });

  step('group by model, last 24 hours');
  await page.selectOption('select[name=group]', 'model');
  await page.selectOption('select[name=range]', '24h');
  await Promise.all([page.waitForURL(/group=model/), page.click('#usage-form button[type=submit]')]);
  assert.match(page.url(), /range=24h/);
  const recent = await groups(page);
  assert.ok(recent.includes('gpt-4o-mini'), `the last day's models: ${recent}`);
  assert.ok(!recent.includes('m-priced'), 'calls of 36 hours ago are outside the last 24 hours');
  assert.equal(await page.locator('#usage thead th').first().textContent(), 'Model');

  step('group by model, last 7 days, day buckets');
  await page.selectOption('select[name=range]', '7d');
  await page.selectOption('select[name=granularity]', 'day');
  await Promise.all([page.waitForURL(/range=7d/), page.click('#usage-form button[type=submit]')]);
  const priced = await page.locator('#usage tr[data-group="m-priced"]').textContent();
  assert.match(priced, /0\.30 USD/, '0.1 + 0.2 is 0.30 USD');
  await page.screenshot({ path: path.join(shots, 'usage-by-model.png'), fullPage: true });

  step('download the CSV with the same filters');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#usage-csv')]);
  assert.match(download.suggestedFilename(), /^loom-usage-by-model-day-\d{8}T\d{4}Z-\d{8}T\d{4}Z\.csv$/);
  const csv = await fs.readFile(await download.path(), 'utf8');
  const lines = csv.trim().split('\n');
  assert.equal(lines[0], 'bucket_start_utc,model,calls,unpriced_calls,input_tokens,output_tokens,cached_input_tokens,reasoning_tokens,cost,currency');
  assert.ok(lines.some((l) => /^\d{4}-\d\d-\d\dT00:00:00Z,m-priced,2,0,300,30,40,5,0\.3,USD$/.test(l)), `the m-priced row, exact:\n${csv}`);
  assert.ok(lines.some((l) => l.includes(`,"'=HYPERLINK(`)), 'a formula model is neutralised and quoted');

  step('log out; tenant A sees its own usage only');
  await page.click('header form button');
  await page.waitForURL(`${base}/console/login`);
  await login(page, keyA);
  await page.goto(`${base}/console/usage?range=7d`);
  assert.equal(await page.inputValue('select[name=group]'), 'key');
  assert.deepEqual(await page.locator('select[name=group] option').evaluateAll((os) => os.map((o) => o.value)), ['key', 'model']);
  assert.deepEqual((await groups(page)).sort(), ['acme-key', 'acme-key-2']);
  const html = await page.content();
  for (const s of forbidden) assert.ok(!html.includes(s), `B's ${s} never shows to A`);
  const [mine] = await Promise.all([page.waitForEvent('download'), page.click('#usage-csv')]);
  const csvA = await fs.readFile(await mine.path(), 'utf8');
  for (const s of forbidden) assert.ok(!csvA.includes(s), `B's ${s} is not in A's CSV`);
  await page.screenshot({ path: path.join(shots, 'usage-tenant.png'), fullPage: true });

  step('a narrow window');
  await page.setViewportSize({ width: 720, height: 900 });
  await page.reload();
  assert.ok(await page.locator('#usage-chart-spend svg').isVisible());
  await page.screenshot({ path: path.join(shots, 'usage-narrow.png'), fullPage: true });
} finally {
  await browser.close();
}
finish(errors, 'usage checks passed');
