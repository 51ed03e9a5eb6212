// Drives the Loom console in the system's headless Chromium, as tenant A:
// the dashboards render their panels (no Pipeline health), A's calls are listed and none of B's, a call page shows its timeline and
// attributes, B's call is a 404, logout is a POST form (a GET logs nobody
// out), and no page logs an error. Run by
// ../browser_test.go, which starts Postgres and the console and sets:
//   CONSOLE_URL, CONSOLE_KEY_A, CONSOLE_TRACES_A, CONSOLE_TRACES_B
//   (comma-separated), CONSOLE_FORBIDDEN (comma-separated strings of B's that
//   must never show), CONSOLE_SCREENSHOTS (a directory).
import { env, finish, launch } from './spec.mjs';
import assert from 'node:assert/strict';
import path from 'node:path';

const base = env('CONSOLE_URL');
const keyA = env('CONSOLE_KEY_A');
const tracesA = env('CONSOLE_TRACES_A').split(',');
const tracesB = env('CONSOLE_TRACES_B').split(',');
const forbidden = env('CONSOLE_FORBIDDEN').split(',').concat(tracesB);
const shots = env('CONSOLE_SCREENSHOTS');

const browser = await launch();
const errors = [];
// The one page expected to answer 404 logs a failed resource load; every
// other console error or uncaught exception fails the run.
const expected404 = `${base}/console/calls/${tracesB[0]}`;
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    if (msg.location().url === expected404) return;
    errors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  const step = (name) => console.log(`step: ${name}`);

  step('login page');
  let resp = await page.goto(`${base}/console/calls`);
  assert.equal(new URL(page.url()).pathname, '/console/login', 'an anonymous visit goes to the login page');
  await page.screenshot({ path: path.join(shots, 'login.png') });

  step('log in as tenant A');
  await page.fill('#key', keyA);
  await Promise.all([page.waitForURL(`${base}/console/`), page.click('button[type=submit]')]);
  assert.match(await page.textContent('#who'), /tenant acme/);
  assert.equal(await page.locator('#panels section.panel').count(), 12, "the Overview dashboard's twelve panels");
  assert.equal(await page.locator('#panels .chart svg.area').count(), 8, 'a chart per time series panel');
  assert.ok(await page.locator('#panels .chart svg .series circle, #panels .chart svg .series line').count() > 0, 'the charts have points');
  const tokens = await page.locator('#panel-overview_tokens_by').textContent();
  assert.ok(tokens.includes('Input tokens') && tokens.includes('acme'), 'the tokens table');
  const overview = await page.content();
  for (const s of forbidden) assert.ok(!overview.includes(s), `B's ${s} never shows on the overview`);
  await page.screenshot({ path: path.join(shots, 'overview.png'), fullPage: true });

  step('dashboards in the nav');
  const dashboards = await page.locator('nav a[data-dashboard]').evaluateAll((as) => as.map((a) => a.dataset.dashboard));
  assert.deepEqual(dashboards, ['overview', 'tenant', 'streaming'], 'no Pipeline health for a tenant, no Calls dashboard beside the calls list');
  await Promise.all([page.waitForURL(`${base}/console/d/tenant`), page.click('nav a[data-dashboard=tenant]')]);
  assert.equal(await page.locator('#panel-tenant_keys_in_use .tile .value').textContent(), '1');
  await page.click('.ranges a[data-range="24h"]');
  await page.waitForURL(/range=24h/);
  assert.ok(await page.locator('#panel-tenant_tokens .chart svg .series line').count() > 0, 'the tokens chart has lines');
  await page.screenshot({ path: path.join(shots, 'tenant.png'), fullPage: true });

  step('calls: all of A, none of B');
  await page.click('nav a[href="/console/calls"]');
  await page.waitForSelector('#calls');
  const html = await page.content();
  for (const t of tracesA) assert.ok(html.includes(t), `A's call ${t} is listed`);
  for (const s of forbidden) assert.ok(!html.includes(s), `B's ${s} never shows`);
  assert.equal(await page.locator('#calls tbody tr[data-trace]').count(), tracesA.length);
  await page.screenshot({ path: path.join(shots, 'calls.png'), fullPage: true });

  step('filters');
  await page.selectOption('select[name=status]', 'error');
  await Promise.all([page.waitForURL(/status=error/), page.click('form.filters button')]);
  assert.equal(await page.locator('#calls tbody tr.err').count(), 1, 'one failed call');

  step('a call page');
  await page.goto(`${base}/console/calls/${tracesA[0]}`);
  assert.equal(await page.locator('#timeline svg rect').count(), 2, 'SERVER and CLIENT bars');
  assert.ok(await page.locator('#timeline svg rect').first().isVisible());
  const attrs = await page.locator('table.attributes').first().textContent();
  assert.ok(attrs.includes('tenant_id') && attrs.includes('acme'), 'typed columns shown');
  await page.locator('#raw details.span summary').first().click(); // raw attributes are folded
  assert.ok(await page.locator('text=attributes.http.route').first().isVisible(), 'jsonb attributes shown');
  assert.ok(await page.locator('text=A device for weaving cloth.').isVisible(), 'captured content shown');
  await page.screenshot({ path: path.join(shots, 'call.png'), fullPage: true });

  step("B's call is a 404");
  resp = await page.goto(expected404);
  assert.equal(resp.status(), 404);
  const body404 = await page.content();
  for (const s of forbidden) assert.ok(!body404.includes(s), `B's ${s} never shows on the 404 page`);

  step('a GET of /console/logout logs nobody out');
  const get = await page.request.get(`${base}/console/logout`, { maxRedirects: 0 });
  assert.notEqual(get.status(), 303, 'GET /console/logout does not log out');
  await page.goto(`${base}/console/`);
  assert.match(await page.textContent('#who'), /tenant acme/, 'still logged in after a GET of /console/logout');

  step('log out (a POST form with its CSRF token)');
  assert.equal(await page.locator('header form[method=post] input[name=csrf]').count(), 1, 'the logout form carries a token');
  await page.click('header form button');
  await page.waitForURL(`${base}/console/login`);
  resp = await page.goto(`${base}/console/`);
  assert.equal(new URL(page.url()).pathname, '/console/login', 'logged out');
} finally {
  await browser.close();
}
finish(errors, 'console checks passed');
