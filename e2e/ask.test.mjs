// The Ask view in a real browser: predictions, the chart, form state in the
// URL, and errors shown where they happen.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ARTIFACTS, fixture, launchBrowser, startServer, watchErrors, pageErrors } from './harness.mjs';

let server, browser;

before(async () => {
  server = await startServer({ models: [fixture('tiny-bert'), fixture('tiny-gpt2')] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('ask a cloze question and see the top predictions', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  const options = await page.locator('#model option').allTextContents();
  assert.equal(options.length, 2);
  assert.match(options[0], /bert, 3 layers × 64 neurons, f32 weights, f32 compute/);
  // index.html's loading line is gone once the app runs; the WebAssembly came
  // compressed (Chromium takes brotli).
  assert.equal(await page.locator('#app-loading').count(), 0);
  const wasm = await page.evaluate(() => performance.getEntriesByType('resource')
    .filter((e) => e.name.endsWith('.wasm')).map((e) => [e.encodedBodySize, e.decodedBodySize]));
  assert.equal(wasm.length, 1);
  assert.ok(wasm[0][0] < wasm[0][1] / 2, `wasm sent ${wasm[0][0]} bytes for ${wasm[0][1]}`);

  await page.fill('#prompt', 'The capital of France is [MASK].');
  await page.fill('#top-k', '5');
  await page.click('#predict');
  await page.waitForSelector('#topk-chart svg');
  const bars = await page.locator('#topk-chart svg rect').count();
  assert.ok(bars >= 5, `expected at least 5 bars, got ${bars}`);
  assert.equal(await page.locator('.tok.blank').textContent(), '[MASK]');

  // The numbers on the page are the API's numbers.
  const api = await (await fetch(`${server.url}/api/predict`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'The capital of France is [MASK].', top_k: 5 }),
  })).json();
  const svg = await page.locator('#topk-chart').innerHTML();
  assert.ok(svg.includes(JSON.stringify(api.top_k[0].token)), 'top token labelled in the chart');
  assert.equal(await page.locator('#topk-chart a', { hasText: 'SVG' }).count(), 1, 'the chart can be exported');
  await page.screenshot({ path: join(ARTIFACTS, 'ask.png'), fullPage: true });
  assert.deepEqual(errors, []);
});

test('predicting again and again logs no error and no panic', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = watchErrors(page);
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  for (const [i, prompt] of ['The capital of France is [MASK].', 'Paris is the capital of [MASK].',
    'The official language of Brazil is [MASK].', 'Albert Einstein was born in [MASK].'].entries()) {
    for (const model of [0, 1]) {
      await page.selectOption('#model', { index: model });
      await page.fill('#prompt', model === 1 ? prompt.replace(/ \[MASK\]\.$/, ' [MASK]') : prompt);
      await page.fill('#top-k', String(3 + i));
      await page.click('#predict');
      await page.waitForFunction((k) => document.querySelectorAll('#topk-chart svg rect').length >= k, 3 + i);
      await page.waitForSelector('#predict:not([disabled])');
    }
  }
  // The page is resized with a chart on it: the chart redraws, nothing logs.
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  assert.deepEqual(errors, []);
});

test('form state lives in the URL', async () => {
  const page = await browser.newPage();
  const q = new URLSearchParams({ prompt: 'Paris is the capital of [MASK].', target: 'France', top_k: '3' });
  await page.goto(`${server.url}/?${q}`);
  await page.waitForSelector('#model option', { state: 'attached' });
  assert.equal(await page.inputValue('#prompt'), 'Paris is the capital of [MASK].');
  assert.equal(await page.inputValue('#target'), 'France');
  await page.click('#predict');
  await page.waitForSelector('#target-prob');
  assert.match(await page.locator('#target-prob').textContent(), /rank \d+/);
  assert.match(page.url(), /prompt=Paris/);
});

test('bad input shows its error message', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#prompt', 'There is no blank in this prompt.');
  await page.click('#predict');
  await page.waitForSelector('#predict-error');
  assert.match(await page.locator('#predict-error').textContent(), /no \[MASK\] in the prompt/);
  // A causal model refuses text after the blank, in words.
  await page.selectOption('#model', { index: 1 });
  await page.fill('#prompt', '[MASK] is the capital of France.');
  await page.click('#predict');
  await page.waitForFunction(() => /blank must end the prompt/.test(document.querySelector('#predict-error')?.textContent || ''));
  await page.screenshot({ path: join(ARTIFACTS, 'ask-error.png'), fullPage: true });
});

test('pick a ParaRel fact and prefill the analysis form', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#relation option', { state: 'attached' });
  await page.selectOption('#relation', 'P36');
  await page.fill('#fact-search', 'France');
  await page.waitForFunction(() => [...document.querySelectorAll('#fact option')].some((o) => o.textContent === 'France → Paris'));
  const value = await page.locator('#fact option').filter({ hasText: /^France → Paris$/ }).getAttribute('value');
  await page.selectOption('#fact', value);
  await page.click('#use-fact');
  assert.equal(await page.inputValue('#target'), 'Paris');
  const prompts = (await page.inputValue('#prompts')).split('\n');
  // tiny-bert is a masked LM: every P36 template, with France as the subject.
  assert.equal(prompts.length, 14);
  assert.ok(prompts.every((p) => p.includes('France') && p.includes('[MASK]')));
  await page.screenshot({ path: join(ARTIFACTS, 'dataset.png'), fullPage: true });
});

test('the ParaRel browser pages through every matching fact', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#relation option', { state: 'attached' });
  await page.selectOption('#relation', 'P36');
  const api = async (offset) => (await fetch(`${server.url}/api/dataset/P36?q=&offset=${offset}&limit=50`)).json();
  const first = await api(0);
  await page.waitForFunction((n) => document.querySelector('label[for=fact]')?.textContent === `Fact (1–50 of ${n} matching, best first)`, first.matching);
  assert.equal(await page.isDisabled('#facts-previous'), true);
  await page.click('#facts-next');
  const second = await api(50);
  await page.waitForFunction((n) => document.querySelector('label[for=fact]')?.textContent === `Fact (51–100 of ${n} matching, best first)`, first.matching);
  assert.equal(await page.locator('#fact option').first().textContent(), `${second.facts[0].subject} → ${second.facts[0].object}`);
  await page.click('#facts-previous');
  await page.waitForFunction(() => /^Fact \(1–50 of/.test(document.querySelector('label[for=fact]')?.textContent || ''));
  // A search starts again at its first page.
  await page.click('#facts-next');
  await page.fill('#fact-search', 'France');
  await page.waitForFunction(() => /^Fact \(\d+ matching\)$/.test(document.querySelector('label[for=fact]')?.textContent || ''));
  await page.close();
});

test('a late answer for an earlier search does not replace the facts shown', async () => {
  const page = await browser.newPage();
  // Hold back P36's unfiltered page until the search typed after it has been answered.
  let searched;
  const answered = new Promise((resolve) => { searched = resolve; });
  await page.route(/\/api\/dataset\/P36\?q=&/, async (route) => {
    await answered;
    await route.continue();
  });
  page.on('response', (r) => { if (/\/api\/dataset\/P36\?q=France/.test(r.url())) searched(); });
  await page.goto(server.url);
  await page.waitForSelector('#relation option', { state: 'attached' });
  const late = page.waitForResponse(/\/api\/dataset\/P36\?q=&/);
  await page.selectOption('#relation', 'P36');
  await page.fill('#fact-search', 'France');
  await late;
  // Give the late page the chance to be drawn, then check the search's answer is still shown.
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 50))));
  const options = await page.locator('#fact option').allTextContents();
  assert.ok(options.includes('France → Paris'), options.join(', '));
  assert.ok(options.every((o) => /France/.test(o)), options.join(', '));
  await page.close();
});

// An edit-strength search, on a model where a setting works (tiny-gpt2) and
// on one where none does (tiny-bert): the page says which before anything is
// applied, with the numbers the API returned.
async function searchStrength(page, modelIndex) {
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.selectOption('#model', { index: modelIndex });
  const prompts = ['The capital of France is [MASK].', 'France\'s capital is [MASK].', 'The capital city of France is [MASK].'];
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', prompts.join('\n'));
  await page.fill('#steps', '4');
  await page.fill('#new-target', 'London');
  await page.click('#find-strength');
  await page.waitForSelector('#strength-verdict', { timeout: 120_000 });
  const link = await page.locator('#edit-permalink').getAttribute('href');
  const stored = await (await fetch(`${server.url}/api/results/${link.slice(3)}`)).json();
  assert.equal(stored.request.search, true);
  const s = stored.edit.strength;
  const rows = await page.locator('#strength-table tbody tr').count();
  assert.equal(rows, s.tried.length);
  for (const [i, t] of s.tried.entries()) {
    const cells = await page.locator(`#strength-table tbody tr:nth-child(${i + 1}) td`).allTextContents();
    assert.equal(cells[0], String(t.lambda2));
    assert.equal(cells[2], t.p_new.toFixed(4));
    assert.equal(cells[5], t.works ? 'yes' : 'no');
  }
  assert.match(await page.locator('#edits').textContent(), /None: the model is as loaded/, 'nothing applied yet');
  return { s, id: stored.edit.edit.id };
}

test('an edit strength that works is shown, then applied on request', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const { s, id } = await searchStrength(page, 1);
  assert.ok(s.chosen !== null, 'tiny-gpt2 has a working setting');
  const t = s.tried.find((x) => x.lambda2 === s.chosen);
  const verdict = await page.locator('#strength-verdict').textContent();
  assert.ok(verdict.startsWith(`λ2 = ${s.chosen} works: the model now answers "London" to “The capital of France is ___.” (P = ${t.p_new.toFixed(4)})`), verdict);
  await page.click('#apply-strength');
  await page.waitForFunction(() => /λ2 = /.test(document.querySelector('#edits').textContent));
  assert.match(await page.locator('#edits').textContent(), new RegExp(`λ2 = ${s.chosen}\\b`));
  assert.ok(page.url().includes(id), 'the applied edit is in the address');
  // With the edit, the model answers London on the edit prompt.
  const models = await (await fetch(`${server.url}/api/models`)).json();
  const api = await (await fetch(`${server.url}/api/predict`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: models[1].name, prompt: 'The capital of France is [MASK].', top_k: 1, edits: [id] }),
  })).json();
  assert.equal(api.top_k[0].token.trim(), 'London');
  await page.locator('#update-form').screenshot({ path: join(ARTIFACTS, 'strength-works.png') });
  await page.close();
});

test('when no edit strength works, the form says so in words and applies nothing', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const { s } = await searchStrength(page, 0);
  assert.equal(s.chosen, null, 'tiny-bert has no working setting');
  const verdict = await page.locator('#strength-verdict').textContent();
  assert.ok(verdict.startsWith('No edit strength works for this fact on this model. We tried λ2 from 0.25 to 12: with none of them does the model answer "London" to “The capital of France is ___.”'), verdict);
  assert.match(verdict, /Nothing was applied/);
  assert.equal(await page.locator('#apply-strength').count(), 0);
  await page.locator('#update-form').screenshot({ path: join(ARTIFACTS, 'strength-none.png') });
  // The paper's setting is one click away, and labelled as such.
  await page.fill('#lambda2', '2');
  await page.click('#paper-setting');
  await page.waitForSelector('#edit-metrics', { timeout: 120_000 });
  assert.equal(await page.inputValue('#lambda2'), '8');
  assert.match(await page.locator('#edits').textContent(), /λ1 = 1, λ2 = 8/);
  await page.close();
});

test('erase a relation as a job, then undo', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#erase-relation', 'P36');
  await page.fill('#erase-facts', '2');
  await page.fill('#erase-top', '3');
  await page.click('#erase-relation-run');
  await page.waitForSelector('#edit-result', { timeout: 120_000 });
  const metrics = await page.locator('#edit-metrics').textContent();
  assert.match(metrics, /Perplexity on P36 \(erased relation\), accuracy \d+% -> \d+% \(\d+ prompts\)/);
  assert.match(await page.locator("#erase-outcome").textContent(), /^Erased relation P36 \(.+\): (forgotten on \d+ of the \d+ prompts|the model answered none of its \d+ prompts)/);
  assert.match(metrics, /other relations/);
  await page.screenshot({ path: join(ARTIFACTS, 'erase-relation.png'), fullPage: true });
  await page.click('#edits li button.undo');
  await page.waitForFunction(() => /None: the model is as loaded/.test(document.querySelector('#edits').textContent));
});

test('a multi-token answer lists its pieces, and P(answer) is their product', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.selectOption('#model', { index: 1 }); // tiny-gpt2: " Lyon" is " L", "y", "on"
  await page.fill('#prompt', 'The capital of France is [MASK].');
  await page.fill('#target', 'Lyon');
  await page.click('#predict');
  await page.waitForSelector('#target-pieces li');
  const api = await (await fetch(`${server.url}/api/predict`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: (await page.inputValue('#model')), prompt: 'The capital of France is [MASK].', target: 'Lyon', top_k: 10 }),
  })).json();
  const pieces = api.target.pieces;
  assert.ok(pieces.length >= 2, 'the fixture splits the answer');
  const items = await page.locator('#target-pieces li').allTextContents();
  assert.equal(items.length, pieces.length);
  pieces.forEach((p, j) => assert.ok(items[j].includes(JSON.stringify(p.token)), `piece ${j}: ${items[j]}`));
  const product = pieces.reduce((a, p) => a * p.prob, 1);
  assert.ok(Math.abs(api.target.prob / product - 1) < 1e-9, 'P(answer) is the product of the pieces');
  assert.match(await page.locator('#target-prob').textContent(), new RegExp(`${pieces.length} pieces, P\\(answer\\) is their product`));
});

// No test of this file left a page error or a console error (a panic of the
// WebAssembly app is both), whatever it was testing.
test('no page logged an error or a panic', () => {
  assert.deepEqual(pageErrors(), []);
});
