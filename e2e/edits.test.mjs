// Edits belong to a page, not to the server: two browser contexts with
// different edits see different results at the same time, and the permalink of
// an edited result reopens the edited numbers in a fresh context.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ARTIFACTS, fixture, launchBrowser, startServer, pageErrors } from './harness.mjs';

let server, browser;
const PROMPTS = 'The capital of France is [MASK].\nFrance\'s capital is [MASK].\nThe capital city of France is [MASK].';

before(async () => {
  server = await startServer({ models: [fixture('tiny-llama')] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function studio(ctx) {
  const page = await ctx.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', PROMPTS);
  await page.fill('#steps', '4');
  return page;
}

async function analyze(page) {
  await page.click('#analyze');
  await page.waitForSelector('#prompt-table', { timeout: 120_000 });
  return {
    effects: await page.locator('#effect-numbers').textContent(),
    prompts: await page.locator('#prompt-table tbody').innerText(),
    state: await page.locator('#analysis-model-state').textContent(),
  };
}

test('two users, two models: edits stay on their page', async () => {
  const alice = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const bob = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const a = await studio(alice);
  const b = await studio(bob);

  // Alice updates the fact; Bob does nothing.
  await a.fill('#new-target', 'France');
  await a.fill('#k', '2');
  await a.click('#update');
  await a.waitForSelector('#edit-result', { timeout: 60_000 });
  await a.waitForSelector('#edited-banner');
  assert.equal(await b.locator('#edited-banner').count(), 0, 'Bob sees no edit');

  // Both ask at the same time: different answers.
  await Promise.all([a.click('#predict'), b.click('#predict')]);
  await Promise.all([a.waitForSelector('#target-prob'), b.waitForSelector('#target-prob')]);
  const [pa, pb] = [await a.locator('#target-prob').textContent(), await b.locator('#target-prob').textContent()];
  assert.notEqual(pa, pb, `Alice's edited model and Bob's base model answer differently (${pa} / ${pb})`);

  // Both analyse at the same time: different numbers, each labelled.
  const [ra, rb] = await Promise.all([analyze(a), analyze(b)]);
  assert.match(ra.state, /edited by 1 edit set/);
  assert.match(rb.state, /the model as loaded/);
  assert.notDeepEqual(ra.prompts, rb.prompts);
  await a.screenshot({ path: join(ARTIFACTS, 'edited-page.png'), fullPage: true });

  // Alice's permalink in a fresh context: the edited numbers, the edit listed.
  const link = await a.locator('#permalink').getAttribute('href');
  const carol = await browser.newContext();
  const c = await carol.newPage();
  await c.goto(server.url + link);
  await c.waitForSelector('#prompt-table');
  assert.equal(await c.locator('#prompt-table tbody').innerText(), ra.prompts);
  assert.equal(await c.locator('#effect-numbers').textContent(), ra.effects);
  assert.match(await c.locator('#analysis-model-state').textContent(), /edited by 1 edit set/);
  await c.waitForSelector('#edited-banner');
  assert.equal(await c.locator('#edits li button.undo').count(), 1);
  assert.equal(await c.inputValue('#target'), 'Paris', 'the link restores the target');

  // Bob's page is still on the base model.
  await b.click('#predict');
  await b.waitForSelector('#target-prob');
  assert.equal(await b.locator('#target-prob').textContent(), pb);
  await Promise.all([alice.close(), bob.close(), carol.close()]);
});

// No test of this file left a page error or a console error (a panic of the
// WebAssembly app is both), whatever it was testing.
test('no page logged an error or a panic', () => {
  assert.deepEqual(pageErrors(), []);
});
