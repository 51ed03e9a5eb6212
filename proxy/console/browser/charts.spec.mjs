// Drives the dashboard charts in the system's headless Chromium: axes with
// units, a hover on a point shows its time and value, the legend hides and
// shows a series, the ranges (6h, 7d, custom, a refused custom range) and
// auto-refresh, the admin's tenant kept across range changes, and the
// overview at 1280 and 390 pixels wide without a chart overflowing. No page
// may log an error, but the refused range's 400. Run by ../charts_test.go,
// which starts Postgres and the console and sets:
//   CONSOLE_URL, CONSOLE_KEY_A, CONSOLE_ADMIN, CONSOLE_SCREENSHOTS (a directory).
import { env, finish, launch } from './spec.mjs';
import assert from 'node:assert/strict';
import path from 'node:path';

const base = env('CONSOLE_URL');
const keyA = env('CONSOLE_KEY_A');
const admin = env('CONSOLE_ADMIN');
const shots = env('CONSOLE_SCREENSHOTS');
const step = (name) => console.log(`step: ${name}`);

const browser = await launch();
const errors = [];

// open logs in with key in a new context of the given width; the page
// records every console error and uncaught exception but the 400 of a
// refused range.
async function open(width, height, key) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const url = msg.location().url || '';
    if (url.includes('range=custom') && msg.text().includes('400')) return;
    errors.push(`console (${width}px): ${msg.text()} (${url})`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror (${width}px): ${err.message}`));
  await page.goto(`${base}/console/login`);
  await page.fill('#key', key);
  await Promise.all([page.waitForURL(`${base}/console/`), page.click('button[type=submit]')]);
  return page;
}

// hoverFirstPoint hovers the first bucket with data of a panel's chart and
// returns its tooltip's text, after checking that the tooltip shows and
// lies inside the chart.
async function hoverFirstPoint(page, panel) {
  const col = page.locator(`#panel-${panel} .hov`).first();
  const tip = col.locator('text.tip');
  assert.equal(await tip.isVisible(), false, `${panel}: the tooltip is hidden until hovered`);
  await col.locator('rect.hit').hover();
  await tip.waitFor({ state: 'visible' });
  const box = await tip.boundingBox();
  const chart = await page.locator(`#panel-${panel} .chart`).boundingBox();
  assert.ok(box.x >= chart.x - 1 && box.x + box.width <= chart.x + chart.width + 1,
    `${panel}: the tooltip (${box.x}+${box.width}) stays inside its chart (${chart.x}+${chart.width})`);
  return tip.textContent();
}

const timeLabel = /^(([01]\d|2[0-3]):[0-5]\d|[A-Z][a-z]{2} \d{1,2})$/;
const dateLabel = /^[A-Z][a-z]{2} \d{1,2}$/;
const axis = (page, panel, sel) => page.locator(`#panel-${panel} ${sel} text`).allTextContents();

try {
  step('overview at 1280 px: axes with units');
  let page = await open(1280, 900, keyA);
  assert.equal(await page.locator('#panels .chart').count(), 8, 'a chart per time series panel');
  const ys = await axis(page, 'overview_latency', 'svg.yaxis');
  assert.ok(ys.length >= 3 && ys.every((y) => / m?s$/.test(y)), `latency ticks carry their unit: ${ys}`);
  const xs = await axis(page, 'overview_latency', '.xlabels.wide');
  assert.ok(xs.length >= 3 && xs.every((x) => timeLabel.test(x)), `time axis labels: ${xs}`);
  assert.equal(await page.locator('#panel-overview_requests .chart-unit').textContent(), 'req/s');
  assert.equal(await page.locator('#panel-overview_tokens .chart-unit').textContent(), 'tokens/s');
  assert.ok((await page.locator('#panel-overview_tokens_by thead').textContent()).includes('Input tokens'), 'human table headers');
  assert.match(await page.textContent('#range-label'), /last hour, times in UTC/);
  await page.screenshot({ path: path.join(shots, 'overview-1280.png'), fullPage: true });

  step('hover a point: its time and value with the unit');
  const tip = await hoverFirstPoint(page, 'overview_latency');
  assert.match(tip, /UTC/, `the tooltip says when: ${tip}`);
  assert.match(tip, /p50: \d+\.\d ms/, `the tooltip gives the value in ms: ${tip}`);
  const reqTip = await hoverFirstPoint(page, 'overview_requests');
  assert.match(reqTip, /requests\/s: [\d.]+ req\/s/, `requests tooltip: ${reqTip}`);
  await page.screenshot({ path: path.join(shots, 'overview-hover.png') });

  step('the legend hides and shows a series');
  const p95 = page.locator('#panel-overview_latency g.series.s1');
  const p50 = page.locator('#panel-overview_latency g.series.s0');
  assert.ok(await p95.isVisible(), 'p95 drawn');
  await page.click('#panel-overview_latency .legend label.k1');
  await p95.waitFor({ state: 'hidden' });
  assert.ok(await p50.isVisible(), 'p50 still drawn');
  await page.locator('#panel-overview_latency').screenshot({ path: path.join(shots, 'latency-p95-hidden.png') });
  const hiddenTip = await hoverFirstPoint(page, 'overview_latency');
  const p95Value = page.locator('#panel-overview_latency .hov').first().locator('tspan.s1');
  assert.equal(await p95Value.count(), 1);
  assert.ok(await p95Value.isHidden(), `the hidden series leaves the tooltip: ${hiddenTip}`);
  await page.click('#panel-overview_latency .legend label.k1');
  await p95.waitFor({ state: 'visible' });

  step('range 6h');
  await Promise.all([page.waitForURL(/range=6h/), page.click('.ranges a[data-range="6h"]')]);
  assert.equal(await page.getAttribute('.ranges a.on', 'data-range'), '6h');
  assert.equal(await page.locator('#panels .chart').count(), 8);
  const xs6 = await axis(page, 'overview_requests', '.xlabels.wide');
  assert.ok(xs6.length >= 3 && xs6.every((x) => timeLabel.test(x)), `6h labels: ${xs6}`);
  assert.match(await hoverFirstPoint(page, 'overview_latency'), /ms/);

  step('range 7d');
  await Promise.all([page.waitForURL(/range=7d/), page.click('.ranges a[data-range="7d"]')]);
  const xs7 = await axis(page, 'overview_requests', '.xlabels.wide');
  assert.ok(xs7.length >= 3 && xs7.every((x) => dateLabel.test(x)), `7d labels are dates: ${xs7}`);
  await page.screenshot({ path: path.join(shots, 'overview-7d.png') });
  assert.match(await hoverFirstPoint(page, 'overview_latency'), /ms/);

  step('custom range');
  const iso = (d) => d.toISOString().slice(0, 16);
  const now = new Date();
  await page.fill('#custom-range input[name=from]', iso(new Date(now - 2 * 3600e3)));
  await page.fill('#custom-range input[name=to]', iso(new Date(now.getTime() + 60e3)));
  await Promise.all([page.waitForURL(/range=custom/), page.click('#custom-range button')]);
  assert.match(await page.textContent('#range-label'), / to .*times in UTC/);
  assert.equal(await page.locator('#panels .chart').count(), 8);
  assert.match(await hoverFirstPoint(page, 'overview_latency'), /p50: \d+\.\d ms/);

  step('a custom range that ends before it starts is refused, saying why');
  await page.fill('#custom-range input[name=from]', iso(now));
  await page.fill('#custom-range input[name=to]', iso(new Date(now - 3600e3)));
  await page.click('#custom-range button');
  await page.waitForSelector('#range-error');
  assert.match(await page.textContent('#range-error'), /must start \(from\) before it ends \(to\)/);
  assert.equal(await page.locator('#panels .chart').count(), 0);

  step('auto-refresh');
  await Promise.all([page.waitForURL(/refresh=30s/), page.click('.refresh a[data-refresh="30s"]')]);
  assert.equal(await page.getAttribute('meta[http-equiv=refresh]', 'content'), '30');
  await Promise.all([page.waitForURL(/range=1h&refresh=30s/), page.click('.ranges a[data-range="1h"]')]);
  assert.equal(await page.getAttribute('meta[http-equiv=refresh]', 'content'), '30', 'the refresh survives a range change');
  await Promise.all([page.waitForURL((u) => !u.search.includes('refresh')), page.click('.refresh a[data-refresh="off"]')]);
  assert.equal(await page.locator('meta[http-equiv=refresh]').count(), 0);
  await page.context().close();

  step('390 px wide: nothing overflows, the tooltip still fits');
  page = await open(390, 844, keyA);
  const overflow = await page.evaluate(() => {
    const out = [];
    const panels = document.getElementById('panels');
    if (panels.scrollWidth > panels.clientWidth + 1) out.push(`#panels ${panels.scrollWidth} > ${panels.clientWidth}`);
    for (const c of document.querySelectorAll('#panels .chart, #panels .panel')) {
      const r = c.getBoundingClientRect();
      if (r.left < 0 || r.right > window.innerWidth + 0.5) out.push(`${c.closest('section').id} ${r.left}..${r.right}`);
    }
    return out;
  });
  assert.deepEqual(overflow, [], 'no panel or chart wider than the screen');
  assert.ok(await page.locator('#panel-overview_requests .xlabels.narrow').isVisible(), 'the narrow time axis shows');
  assert.ok(await page.locator('#panel-overview_requests .xlabels.wide').isHidden(), 'the wide time axis does not');
  const narrow = await axis(page, 'overview_requests', '.xlabels.narrow');
  assert.ok(narrow.length >= 2 && narrow.length <= 4 && narrow.every((x) => timeLabel.test(x)), `narrow labels: ${narrow}`);
  assert.match(await hoverFirstPoint(page, 'overview_latency'), /p50: \d+\.\d ms/);
  await page.screenshot({ path: path.join(shots, 'overview-390.png'), fullPage: true });
  await page.context().close();

  step("admin: the tenant stays across range changes");
  page = await open(1280, 900, admin);
  await page.fill('form.tenant-filter input[name=tenant]', 'globex');
  await Promise.all([page.waitForURL(/tenant=globex/), page.click('form.tenant-filter button')]);
  await Promise.all([page.waitForURL(/range=6h/), page.click('.ranges a[data-range="6h"]')]);
  assert.match(page.url(), /tenant=globex/, 'the 6h link keeps the tenant');
  assert.match(await page.textContent('#range-label'), /tenant globex/);
  // globex's calls took 1300 and 400 ms; acme's 840, 2100 and 95.
  const globexTip = await hoverFirstPoint(page, 'overview_latency');
  assert.match(globexTip, /p50: \d+\.\d ms/);
  assert.ok(!/: (840|2100|95)\.0 ms/.test(globexTip), `globex's calls only: ${globexTip}`);

  step('every dashboard draws its charts');
  for (const [d, n] of [['tenant', 3], ['streaming', 4], ['pipeline', 3]]) {
    await page.goto(`${base}/console/d/${d}?range=24h`);
    assert.equal(await page.locator('#panels .chart svg.area').count(), n, `${d}: ${n} charts`);
    for (const c of await page.locator('#panels .chart').all()) {
      assert.ok((await c.locator('svg.yaxis text').count()) >= 2, `${d}: every chart has a value axis`);
    }
  }
  await page.screenshot({ path: path.join(shots, 'pipeline.png'), fullPage: true });
  await page.context().close();
} finally {
  await browser.close();
}
finish(errors, 'chart checks passed');
