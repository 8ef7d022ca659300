// sluice's console in a real browser (the system Chromium, driven by playwright-core).
// Run by tests/it/console_browser.rs, which starts `sluice server`, makes the workflows, tokens and
// a failed execution, and serves a page of another site that forges a POST; this script fails
// (exit 1, with what it expected) at the first thing that is not as a user would expect.
import { chromium } from 'playwright-core';

const env = process.env;
const base = env.SLUICE_URL;
const shots = env.SLUICE_SCREENSHOTS || '';
const step = (text) => console.log(`console.mjs: ${text}`);

function check(ok, message) {
  if (!ok) throw new Error(message);
}

// Accessibility basics: a language, a heading, and a name for every control.
async function accessible(page, what) {
  const problems = await page.evaluate(() => {
    const out = [];
    if (!document.documentElement.lang) out.push('the page has no lang');
    if (!document.querySelector('h1')) out.push('the page has no h1');
    for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea, button')) {
      const named = (el.labels && el.labels.length > 0) || el.getAttribute('aria-label') ||
        el.getAttribute('aria-labelledby') || (el.tagName === 'BUTTON' && el.textContent.trim());
      if (!named) out.push(`no label: ${el.outerHTML.slice(0, 100)}`);
    }
    return out;
  });
  check(problems.length === 0, `${what}: ${problems.join('; ')}`);
}

async function statusBecomes(page, wanted) {
  await page.waitForFunction(
    (w) => document.querySelector('#status')?.textContent.trim() === w, wanted, { timeout: 60000 });
}

async function shot(page, name) {
  if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

const browser = await chromium.launch({
  executablePath: env.SLUICE_CHROMIUM, headless: true, args: ['--no-sandbox'],
});
try {
  const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
  const page = await context.newPage();

  step('log in');
  await page.goto(`${base}/ui/executions`);
  check(page.url().includes('/ui/login?next='), `not sent to log in: ${page.url()}`);
  await accessible(page, 'login');
  await page.getByLabel('Token').fill(env.ADMIN_TOKEN);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL(`${base}/ui/executions`);
  await accessible(page, 'executions');

  step('start an execution from the console and watch it succeed');
  await page.goto(`${base}/ui/workflows/slow-ok`);
  await accessible(page, 'workflow');
  await page.getByLabel('Input (JSON)').fill('{"from": "the console"}');
  await page.getByRole('button', { name: 'Start', exact: true }).click();
  await page.waitForURL(/\/ui\/executions\/[0-9a-f-]+$/);
  const started = page.url();
  check((await page.textContent('#status')).trim() === 'running', 'the new execution is not running');
  await statusBecomes(page, 'succeeded');
  check(await page.locator('svg.graph rect.state.succeeded[data-state="Nap"]').count() === 1,
    'the graph does not show Nap succeeded');
  check((await page.content()).includes('the console'), 'the input is not shown');
  await accessible(page, 'execution');

  step('open the failed execution and read its error');
  await page.goto(`${base}/ui/executions?status=failed`);
  await page.getByRole('link', { name: 'broken-night' }).click();
  await page.waitForURL(`${base}/ui/executions/${env.FAILED_ID}`);
  check((await page.textContent('#error')).trim() === 'Sluice.Broken', 'the error is not shown');
  check((await page.textContent('#cause')).includes('the check failed'), 'the cause is not shown');
  check(await page.locator('svg.graph rect.state.failed[data-state="Check"]').count() === 1,
    'the failed state is not drawn as failed');
  check(await page.locator('svg.graph rect.state.succeeded[data-state="Prepare"]').count() === 1,
    'the state before it is not drawn as succeeded');
  await shot(page, 'console-execution-failed');

  step('edit the definition, validate, save, and redrive');
  await page.getByRole('link', { name: 'Edit the definition' }).click();
  await page.waitForURL(/return_to=/);
  const editor = page.getByLabel('Definition (Amazon States Language, JSON)');
  await editor.fill('{"StartAt": "Prepare", "States": {"Prepare": {"Type": "Pass", "Next": "Check"}, "Check": {"Type": "Pass", "Nxt": "x"}}}');
  await page.getByRole('button', { name: 'Validate' }).click();
  check((await page.textContent('#notice')).includes('/States/Check'), 'an invalid definition is not refused at its pointer');
  await editor.fill(JSON.stringify({
    StartAt: 'Prepare',
    States: {
      Prepare: { Type: 'Pass', Result: { ok: true }, Next: 'Check' },
      Check: { Type: 'Pass', Result: 'checked again', End: true },
    },
  }, null, 2));
  await page.getByRole('button', { name: 'Validate' }).click();
  check((await page.textContent('#notice')).includes('valid: 2 states'), 'the fixed definition does not validate');
  await page.getByRole('button', { name: /^Save as version 2$/ }).click();
  await page.waitForURL(`${base}/ui/executions/${env.FAILED_ID}`);
  check((await page.content()).includes('with version 2 of nightly-broken'), 'redrive does not say it runs version 2');
  await page.getByRole('button', { name: 'Redrive' }).click();
  await statusBecomes(page, 'succeeded');
  check(await page.locator('svg.graph rect.state.succeeded[data-state="Check"]').count() === 1,
    'the redriven state is not drawn as succeeded');
  check((await page.content()).includes('checked again'), 'the redriven output is not shown');

  step('the versions differ');
  await page.goto(`${base}/ui/workflows/nightly-broken?from=1&to=2`);
  check(await page.locator('.diff .del').count() > 0 && await page.locator('.diff .ins').count() > 0,
    'the diff shows no change');
  await shot(page, 'console-workflow');
  await page.goto(`${base}/ui/executions`);
  await shot(page, 'console-executions');
  await page.goto(started);
  await shot(page, 'console-execution');

  step('promote a model version');
  await page.goto(`${base}/ui/models/sensors`);
  await accessible(page, 'model group');
  check((await page.textContent('#champion')).trim() === 'version 1', 'v1 is not the champion');
  check((await page.textContent('#version-2')).includes('0.57×'), 'v2 is not shown beside seasonal naive');
  await page.getByLabel('Version', { exact: true }).selectOption('2');
  await page.getByLabel('Reason').first().fill('v2 beats v1 on the backtest');
  await page.getByRole('button', { name: 'Promote' }).click();
  await page.waitForURL(`${base}/ui/models/sensors`);
  check((await page.textContent('#champion')).trim() === 'version 2', 'the promotion did not move the champion');
  check((await page.content()).includes('v2 beats v1 on the backtest'), 'the reason is not in the history');
  await shot(page, 'console-models');
  await page.goto(`${base}/ui/endpoints/sensors`);
  await accessible(page, 'endpoint');
  check((await page.textContent('.target')).trim() === 'champion', 'the endpoint does not follow the champion');

  step('a forecast against the actuals that landed since');
  await page.goto(`${base}${env.FORECAST_PATH}`);
  await accessible(page, 'forecast');
  check(await page.locator('figure svg[role=img]').isVisible(), 'the forecast chart is not drawn');
  check((await page.textContent('#coverage')).includes('of 24 points landed'), 'the actuals did not land on the chart');
  await page.getByLabel('Series').selectOption('device-1');
  await page.getByRole('button', { name: 'Show' }).click();
  await page.waitForURL(/item=device-1/);
  check((await page.textContent('h1')).includes('device-1'), 'the series picker did not show device-1');
  await shot(page, 'console-forecast');

  step('every section has a heading and labelled controls');
  for (const section of ['/ui/workflows', '/ui/schedules', '/ui/tables', '/ui/query', '/ui/models', '/ui/forecasts', '/ui/drift', '/ui/endpoints']) {
    const answer = await page.goto(`${base}${section}`);
    check(answer.status() === 200, `${section} answered ${answer.status()}`);
    await accessible(page, section);
  }

  step('a predict token sees no admin page');
  const app = await browser.newContext();
  const appPage = await app.newPage();
  await appPage.goto(`${base}/ui/login`);
  await appPage.getByLabel('Token').fill(env.PREDICT_TOKEN);
  await appPage.getByRole('button', { name: 'Log in' }).click();
  await appPage.waitForLoadState();
  const answer = await appPage.goto(`${base}/ui/workflows`);
  check(answer.status() === 403, `a predict session got ${answer.status()} for an admin page`);
  check((await appPage.content()).includes('needs an admin token'), 'the refusal does not say why');
  await app.close();

  step('a forged cross-site POST is refused');
  const forged = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(base));
  await page.goto(env.EVIL_URL);
  const response = await forged;
  check(response.status() === 403, `the forged POST got ${response.status()}`);
  await page.waitForLoadState();
  check(!(await page.content()).includes('"evil"'), 'the forged POST started something');
  step('done');
} finally {
  await browser.close();
}
