// The walk-through, a new user's path in the system's headless
// Chromium: log in as admin, create a tenant with a model, its own provider
// credential and a key (read the key shown once), log out, log in with that
// key, make calls with an SDK, see them on the overview and the calls list,
// open one, and have the admin revoke the key in a second browser: the
// tenant's next page is the login, saying its session ended. No page may log
// an error. Screenshots at 1280 wide for the README.
//
// Run by ../walk_test.go, which starts Loom (gateway, store, admin API,
// console), otelcol-loom, Postgres and the mock, and sets:
//   WALK_CONSOLE_URL, WALK_ADMIN_TOKEN, WALK_UPSTREAM_KEY (the tenant's own
//   credential for the mock), WALK_SDK_URL (POST /await and /calls with the
//   key as the body: the test's openai-go client makes the calls),
//   WALK_CALLS (how many), WALK_SCREENSHOTS (a directory).
// Selectors are the console's stable hooks (data-nav, data-trace, ids of the
// admin forms, headings), not the markup of the charts or tables.
import { env, finish, launch } from './spec.mjs';
import assert from 'node:assert/strict';
import path from 'node:path';

const base = env('WALK_CONSOLE_URL');
const adminToken = env('WALK_ADMIN_TOKEN');
const upstreamKey = env('WALK_UPSTREAM_KEY');
const sdk = env('WALK_SDK_URL');
const calls = Number(env('WALK_CALLS'));
const shots = env('WALK_SCREENSHOTS');
const tenant = 'walkthrough';
const model = 'gpt-4o-mini';
const keyID = 'walkthrough-laptop';

const browser = await launch();
const errors = [];
const began = Date.now();
const step = (name) => console.log(`step (${((Date.now() - began) / 1000).toFixed(1)}s): ${name}`);
const shot = (page, name) => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });

// newPage is a page that records every console error and uncaught
// exception. Chromium logs a document answered with an error status as a
// failed resource: these are the answers whose error status is the point of
// their step (a refused form's 400, the ended session's 401).
const expected = [
  { url: `${base}/console/tenants`, status: 400 },
  { url: `${base}/console/calls`, status: 401 },
];
const newPage = async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const { url } = msg.location();
    if (expected.some((e) => e.url === url && msg.text().includes(`status of ${e.status} `))) return;
    errors.push(`console: ${msg.text()} (${msg.location().url})`);
  });
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.message}`));
  return page;
};

// poll reloads the page until check() is true, for at most ms.
const poll = async (page, what, check, ms = 20000) => {
  const until = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > until) throw new Error(`${what}: not after ${ms / 1000}s`);
    await page.waitForTimeout(300);
    await page.reload();
  }
};

const post = async (route, key) => {
  const resp = await fetch(`${sdk}${route}`, { method: 'POST', body: key });
  const text = await resp.text();
  assert.equal(resp.status, 200, `${route}: ${text}`);
  return text;
};

try {
  const admin = await newPage();

  step('log in as admin');
  await admin.goto(`${base}/console/`);
  assert.equal(new URL(admin.url()).pathname, '/console/login');
  await shot(admin, 'login');
  await admin.fill('#key', adminToken);
  await Promise.all([admin.waitForURL(`${base}/console/`), admin.click('form.login button[type=submit]')]);
  assert.match(await admin.textContent('#who'), /admin/);

  step('create a tenant');
  await Promise.all([admin.waitForURL(`${base}/console/tenants`), admin.click('nav a[data-nav=tenants]')]);
  assert.equal(await admin.locator('h1').first().textContent(), 'Tenants');
  await admin.fill('#create-tenant input[name=id]', 'not valid!');
  await admin.click('#create-tenant button[type=submit]');
  const refusal = await admin.locator('#create-tenant [data-error=tenant]').textContent();
  assert.match(refusal, /letters, digits/, 'a bad id is refused in words, in the form');
  await admin.fill('#create-tenant input[name=id]', tenant);
  await admin.fill('#create-tenant input[name=rpm]', '600');
  await admin.fill('#create-tenant input[name=tpm]', '200000');
  await admin.check('#create-tenant input[name=capture]');
  await Promise.all([admin.waitForURL(`${base}/console/tenants/${tenant}`), admin.click('#create-tenant button[type=submit]')]);

  step('its model and its own provider credential');
  await admin.fill('#models-form textarea[name=models]', `${model}=mock`);
  await Promise.all([admin.waitForURL(/#models$/), admin.click('#models-form button[type=submit]')]);
  const mock = admin.locator('#credential-list tr[data-deployment=mock]');
  assert.equal((await mock.locator('td.cred').textContent()).trim(), 'not set');
  await mock.locator('input[name=api_key]').fill(upstreamKey);
  await Promise.all([admin.waitForURL(/#credentials$/), mock.locator('button[type=submit]').first().click()]);
  assert.equal((await admin.locator('#credential-list tr[data-deployment=mock] td.cred').textContent()).trim(), 'set');
  assert.ok(!(await admin.content()).includes(upstreamKey), 'the credential is never shown back');

  // (A refused form answers 400, which Chromium logs as an error: the
  // refusals are budgets_test.go's.)
  step('its monthly budget, listed');
  await admin.fill('#budgets-form input[name=limit1]', '100.00');
  await Promise.all([admin.waitForURL(/#budgets$/), admin.click('#budgets-form button[type=submit]')]);
  assert.match(await admin.locator('#budget-list li[data-period=month]').textContent(), /100\.00/);

  step('create a key: shown once, with a copy button');
  await admin.fill('#create-key input[name=key_id]', keyID);
  await admin.click('#create-key button[type=submit]');
  await admin.waitForSelector('#new-key-value');
  const key = (await admin.textContent('#new-key-value')).trim();
  assert.match(key, /^sk-loom-/);
  assert.equal(await admin.locator('button[data-copy-target="#new-key-value"]').count(), 1, 'a copy button');
  await admin.click('button[data-copy-target="#new-key-value"]');
  await shot(admin, 'tenant');
  await admin.goto(`${base}/console/tenants/${tenant}`);
  assert.ok(!(await admin.content()).includes(key), 'the key is not shown again');
  assert.equal(await admin.locator(`#key-list tr[data-key="${keyID}"]`).count(), 1, 'the key is listed');
  await admin.goto(`${base}/console/tenants`);
  assert.equal(await admin.locator(`tr[data-tenant="${tenant}"]`).count(), 1, 'the tenant is listed');
  await shot(admin, 'tenants');

  step('log out; log in with the new key');
  await Promise.all([admin.waitForURL(`${base}/console/login`), admin.click('header form button')]);
  await post('/await', key); // the gateway's snapshot has the key
  const user = await newPage();
  await user.goto(`${base}/console/login`);
  await user.fill('#key', key);
  await Promise.all([user.waitForURL(`${base}/console/`), user.click('form.login button[type=submit]')]);
  assert.match(await user.textContent('#who'), new RegExp(`tenant ${tenant}`));

  step(`${calls} calls with openai-go`);
  assert.equal(await post(`/calls?model=${model}`, key), String(calls));

  step('the calls on the overview');
  await user.goto(`${base}/console/`);
  await poll(user, 'the model on the overview', async () => (await user.locator('main').textContent()).includes(model));
  await shot(user, 'overview');

  step('the calls list');
  await Promise.all([user.waitForURL(/\/console\/calls/), user.click('nav a[data-nav=calls]')]);
  await poll(user, `${calls} calls listed`, async () => (await user.locator('tr[data-trace]').count()) >= calls);
  await shot(user, 'calls');

  step('open a call');
  const trace = await user.locator('tr[data-trace]').first().getAttribute('data-trace');
  const resp = await user.goto(`${base}/console/calls/${trace}`);
  assert.equal(resp.status(), 200);
  assert.ok((await user.locator('main').textContent()).includes(model), 'the call names its model');
  await shot(user, 'call');

  step('its usage and spend');
  await Promise.all([user.waitForURL(/\/console\/usage/), user.click('nav a[data-nav=usage]')]);
  assert.ok((await user.locator('main').textContent()).includes(keyID), 'the usage, by key, names the key that called');
  await shot(user, 'usage');

  step('the tenant sees its own key, and no tenants page');
  await Promise.all([user.waitForURL(`${base}/console/keys`), user.click('nav a[data-nav=keys]')]);
  assert.equal(await user.locator(`#key-list tr[data-key="${keyID}"]`).count(), 1);
  await shot(user, 'keys');
  assert.equal((await user.request.get(`${base}/console/tenants`)).status(), 404, 'no tenants page for a tenant');

  step('the admin revokes the key in another browser');
  await admin.fill('#key', adminToken);
  await Promise.all([admin.waitForURL(`${base}/console/`), admin.click('form.login button[type=submit]')]);
  await admin.goto(`${base}/console/tenants/${tenant}`);
  await Promise.all([admin.waitForURL(/#keys$/), admin.click(`button[data-revoke="${keyID}"]`)]);
  assert.equal((await admin.locator(`#key-list tr[data-key="${keyID}"] td.state`).textContent()).trim(), 'revoked');

  step("the tenant's session ends");
  await user.goto(`${base}/console/calls`);
  await poll(user, 'the session-ended message', async () => {
    const e = user.locator('#login-error');
    return (await e.count()) > 0 && /session has ended/.test(await e.textContent());
  }, 10000);
  await shot(user, 'session-ended');
} finally {
  await browser.close();
}
finish(errors, `the walk-through passed in ${((Date.now() - began) / 1000).toFixed(1)}s`);
