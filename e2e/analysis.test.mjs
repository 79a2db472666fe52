// Find a fact's knowledge neurons in the browser: attribution heatmap, knowledge
// vs baseline, suppress/amplify, exports, and a permalink that reopens the same
// numbers in a fresh browser context and after a server restart.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, fixture, launchBrowser, startServer, pageErrors } from './harness.mjs';

let server, browser;
const models = [fixture('tiny-llama')];

// The cancel test needs a job long enough to watch: raise the server's budgets.
const extraArgs = ['--max-steps', '1000', '--max-work', '100000000'];

before(async () => {
  server = await startServer({ models, extraArgs });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function numbers(page) {
  await page.waitForSelector('#effect-numbers');
  return {
    effects: await page.locator('#effect-numbers').textContent(),
    knowledge: await page.locator('#knowledge-table tbody').innerText(),
    baseline: await page.locator('#baseline-table tbody').innerText(),
    prompts: await page.locator('#prompt-table tbody').innerText(),
  };
}

test('a bad setting is its field\'s error, and goes when the field is fixed', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', 'The capital of France is [MASK].');
  await page.fill('#p', '2');
  await page.click('#analyze');
  await page.waitForSelector('#p-error');
  assert.equal(await page.getAttribute('#p', 'aria-invalid'), 'true');
  assert.equal(await page.getAttribute('#p', 'aria-describedby'), 'p-error');
  assert.equal(await page.getAttribute('#t', 'aria-invalid'), 'false');
  await page.fill('#p', '0.6');
  await page.waitForSelector('#p-error', { state: 'detached' });
  assert.equal(await page.getAttribute('#p', 'aria-invalid'), 'false');
  await page.close();
});

test('attribute, compare, export, share, restart', async () => {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', 'The capital of France is [MASK].\nFrance\'s capital is [MASK].\nThe capital city of France is [MASK].');
  await page.fill('#steps', '4');
  await page.fill('#t', '0.2');
  await page.fill('#p', '0.6');
  await page.click('#analyze');
  await page.waitForSelector('#heatmap svg', { timeout: 120_000 });
  assert.match(await page.locator('.meta').textContent(), /t = 0\.2 · p = 0\.6/);
  const cells = await page.locator('#heatmap svg rect').count();
  assert.ok(cells >= 3 * 128, `heatmap has ${cells} cells`);
  assert.ok(await page.locator('#knowledge-table tbody tr').count() >= 1, 'knowledge neurons listed');
  assert.equal(await page.locator('#top-neurons tbody tr').count(), 15, 'top neurons by score listed');
  assert.ok(await page.locator('#effects svg rect').count() >= 3, 'suppress/amplify bars drawn');
  const before = await numbers(page);
  assert.match(before.effects, /knowledge: suppress [+-]\d+\.\d+%, amplify [+-]\d+\.\d+%/);
  assert.match(before.effects, /random: suppress/);
  await page.screenshot({ path: join(ARTIFACTS, 'analysis.png'), fullPage: true });
  const link = await page.locator('#permalink').getAttribute('href');
  assert.match(link, /^\/r\/[0-9a-f]{20}$/);
  assert.ok(page.url().includes(link), 'the address bar holds the permalink');

  // Export: the heatmap's SVG and the effects' CSV download and are what they claim.
  const [svgDl] = await Promise.all([page.waitForEvent('download'), page.locator('#heatmap a', { hasText: 'SVG' }).click()]);
  const svg = readFileSync(await svgDl.path(), 'utf8');
  assert.ok(svg.startsWith('<svg') && svg.includes('</svg>'), 'a valid SVG file');
  const [pngDl] = await Promise.all([page.waitForEvent('download'), page.locator('#effects button.png').click()]);
  const png = readFileSync(await pngDl.path());
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG file');
  assert.ok(png.length > 5000, `PNG of ${png.length} bytes`);
  // Under the chart, a caption line (answer, model, permalink): the PNG is the
  // chart's height plus 22 px, at 2×, and that strip has ink in it.
  const svgHeight = Number(await page.locator('#effects .svg svg').getAttribute('height'));
  assert.equal(png.readUInt32BE(20), 2 * (svgHeight + 22));
  const ink = await page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const c = document.createElement('canvas');
    [c.width, c.height] = [img.width, img.height];
    const ctx = c.getContext('2d');
    ctx.drawImage(img, 0, 0);
    const strip = ctx.getImageData(0, img.height - 44, img.width, 44).data;
    let dark = 0;
    for (let i = 0; i < strip.length; i += 4) if (strip[i] < 128) dark++;
    return dark;
  }, png.toString('base64'));
  assert.ok(ink > 200, `the caption strip has ${ink} dark pixels`);
  writeFileSync(join(ARTIFACTS, 'effects-export.png'), png);
  const [csvDl] = await Promise.all([page.waitForEvent('download'), page.locator('#effects a', { hasText: 'CSV' }).click()]);
  const csv = readFileSync(await csvDl.path(), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'set,suppress_percent,amplify_percent');
  assert.ok(csv[1].startsWith('knowledge,'));

  // The permalink in a fresh browser context: same numbers, no recomputation.
  const fresh = await browser.newContext();
  const p2 = await fresh.newPage();
  await p2.goto(server.url + link);
  await p2.waitForSelector('#heatmap svg');
  assert.deepEqual(await numbers(p2), before);
  assert.match(await p2.locator('.meta').textContent(), /from the store/);
  await p2.screenshot({ path: join(ARTIFACTS, 'permalink.png'), fullPage: true });

  // Restart the server on the same data directory: the link still works.
  await server.stop();
  server = await startServer({ models, extraArgs, dataDir: server.dataDir });
  const p3 = await (await browser.newContext()).newPage();
  await p3.goto(server.url + link);
  await p3.waitForSelector('#heatmap svg');
  assert.deepEqual(await numbers(p3), before);
  assert.deepEqual(errors, []);
});

test('erase the knowledge neurons from their table: the fact\'s prompts first, in an erase\'s terms', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  const prompts = ['The capital of France is [MASK].', 'France\'s capital is [MASK].'];
  await page.fill('#prompts', prompts.join('\n'));
  await page.fill('#steps', '4');
  await page.fill('#t', '0.1');
  await page.fill('#p', '0.5');
  await page.fill('#eval', 'Rome is the capital of [MASK]. | Italy');
  await page.click('#analyze');
  await page.waitForSelector('#heatmap svg', { timeout: 120_000 });
  const listed = (await page.locator('#knowledge-table tbody tr td:nth-child(1)').allTextContents()).length;
  assert.ok(listed >= 1);
  const analysis = await (await page.request.get(`${server.url}/api/results/${(await page.locator('#permalink').getAttribute('href')).slice(3)}`)).json();
  const knowledge = analysis.result.neurons.knowledge.map((n) => `L${n.layer}:${n.index}`);
  await page.click('#erase-knowledge');
  assert.equal(await page.inputValue('#erase-neurons'), knowledge.join(', '));
  await page.waitForFunction(() => document.activeElement?.id === 'erase');
  assert.match(await page.locator('#erase-fact').textContent(), /"Paris", 2 prompts/);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#erase-outcome', { timeout: 60_000 });
  const link = await page.locator('#edit-permalink').getAttribute('href');
  const stored = await (await page.request.get(`${server.url}/api/results/${link.slice(3)}`)).json();
  const o = stored.edit.erase;
  assert.deepEqual(stored.request.prompts, prompts);
  const pct = (x) => `${x < 0 ? '−' : '+'}${(100 * Math.abs(x)).toFixed(1)}%`;
  assert.equal(await page.locator('#erase-outcome').textContent(), o.known === 0
    ? `Erased the fact "Paris": the model answered none of its 2 prompts before the erase, so none can be forgotten; P(answer) ${pct(o.p_change)} on average.`
    : `Erased the fact "Paris": forgotten on ${o.forgotten} of the ${o.known} prompts the model answered (of 2); P(answer) ${pct(o.p_change)} on average.`);
  assert.match(await page.locator('#edit-metrics').textContent(), new RegExp(`top-1 changed on ${o.side_changed} of 1 other prompts`));
  // The fact's own prompts first, then the side effect; no update's rates, no λ advice.
  const rows = await page.locator('#edit-predictions tbody tr td:first-child').allTextContents();
  assert.deepEqual(rows, prompts);
  assert.deepEqual(await page.locator('#erase-side-effects tbody tr td:first-child').allTextContents(), ['Rome is the capital of [MASK].']);
  const result = await page.locator('#edit-result').textContent();
  assert.doesNotMatch(result, /success rate|λ2|norm-scaled/);
  for (const [i, e] of stored.edit.predictions.entries()) {
    const cell = await page.locator(`#edit-predictions tbody tr:nth-child(${i + 1}) td:nth-child(2)`).textContent();
    assert.equal(cell, `${e.p_before.toFixed(4)} → ${e.p_after.toFixed(4)}`);
  }
  await page.locator('#erase-form').screenshot({ path: join(ARTIFACTS, 'erase.png') });
  await page.close();
});

test('a multi-token answer is analysed where the form says, and its permalink says so too', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Lyon'); // three pieces for the tiny-llama tokenizer
  await page.selectOption('#answer-positions', 'first');
  await page.fill('#prompts', 'The capital of France is [MASK].\nFrance\'s capital is [MASK].');
  await page.fill('#steps', '4');
  await page.click('#analyze');
  await page.waitForSelector('#heatmap svg', { timeout: 120_000 });
  const link = await page.locator('#permalink').getAttribute('href');
  const stored = await (await fetch(`${server.url}/api/results/${link.slice(3)}`)).json();
  assert.equal(stored.request.answer_positions, 'first', 'the request names the positions');
  // P(answer) on the page is the product of the pieces' probabilities.
  const api = await (await fetch(`${server.url}/api/predict`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'The capital of France is [MASK].', target: 'Lyon' }),
  })).json();
  assert.ok(api.target.pieces.length >= 2);
  const p = stored.result.prompts[0].p_target;
  assert.ok(Math.abs(p / api.target.prob - 1) < 1e-4, `${p} vs ${api.target.prob}`);
  // The permalink in a fresh context restores the form's positions.
  const p2 = await (await browser.newContext()).newPage();
  await p2.goto(server.url + link);
  await p2.waitForSelector('#heatmap svg');
  assert.equal(await p2.inputValue('#answer-positions'), 'first');
  assert.equal(await p2.inputValue('#target'), 'Lyon');
});

test('analysis errors are shown in words', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', 'A prompt without a blank.');
  await page.click('#analyze');
  await page.waitForSelector('#analysis-error');
  assert.match(await page.locator('#analysis-error').textContent(), /prompt 1: .*no \[MASK\]/);
  await page.goto(server.url + '/r/0123456789abcdef0123');
  await page.waitForSelector('#analysis-error');
  assert.match(await page.locator('#analysis-error').textContent(), /no stored result/);
});

test('a long analysis shows progress and can be cancelled', async () => {
  const page = await browser.newPage();
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  const prompts = Array.from({ length: 30 }, (_, i) => `The capital of France${' truly'.repeat(i % 7)} is [MASK].`);
  await page.fill('#prompts', prompts.join('\n'));
  await page.fill('#steps', '1000');
  await page.click('#analyze');
  await page.waitForSelector('#analysis-progress');
  await page.waitForFunction(() => /of 30 prompts attributed/.test(document.querySelector('.progress span')?.textContent || ''));
  // Once a prompt is done, the time left at the pace so far.
  await page.waitForFunction(() => /^[1-9]\d* of 30 prompts attributed, (under a second|about \d+ (s|min \d+ s)) left$/.test(document.querySelector('.progress span')?.textContent || ''), null, { timeout: 60_000 });
  await page.screenshot({ path: join(ARTIFACTS, 'progress.png') });
  await page.click('#cancel');
  await page.waitForSelector('#analysis-error');
  assert.match(await page.locator('#analysis-error').textContent(), /cancelled/);
});

test('update a fact, see the effect on this page only, undo it', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', 'The capital of France is [MASK].\nFrance\'s capital is [MASK].\nThe capital city of France is [MASK].');
  await page.click('#predict');
  await page.waitForSelector('#target-prob');
  const before = await page.locator('#target-prob').textContent();
  await page.fill('#new-target', 'France');
  await page.fill('#k', '2');
  await page.fill('#eval', 'Paris is the capital of [MASK]. | France');
  await page.click('#update');
  await page.waitForSelector('#edit-result', { timeout: 60_000 });
  assert.match(await page.locator('#edit-metrics').textContent(), /change rate \d+%, success rate \d+%; perplexity on eval \(1 prompts\)/);
  assert.equal(await page.locator('#edit-predictions tbody tr').count(), 3);
  assert.equal(await page.locator('#edits li button.undo').count(), 1);
  await page.waitForSelector('#edited-banner');
  assert.match(page.url(), /[?&]edits=[0-9a-f]{20}/, 'the page keeps its edit in its address');
  await page.click('#predict');
  await page.waitForFunction((b) => document.querySelector('#target-prob')?.textContent !== b, before);
  // The outcome has its own permalink, which reopens the before/after table.
  const outcome = await page.locator('#edit-permalink').getAttribute('href');
  const other = await browser.newPage();
  await other.goto(server.url + outcome);
  await other.waitForSelector('#edit-result');
  assert.equal(await other.locator('#edit-predictions tbody tr').count(), 3);
  assert.equal(await other.locator('#edits li button.undo').count(), 1, 'a shared edit continues on the edited model');
  await other.close();
  await page.screenshot({ path: join(ARTIFACTS, 'edit.png'), fullPage: true });
  await page.click('#edits li button.undo');
  await page.waitForFunction(() => /None: the model is as loaded/.test(document.querySelector('#edits').textContent));
  assert.equal(await page.locator('#edited-banner').count(), 0);
  await page.click('#predict');
  await page.waitForFunction((b) => document.querySelector('#target-prob')?.textContent === b, before);
  // A malformed neuron list is refused in words.
  await page.fill('#erase-neurons', 'L1');
  await page.click('#erase');
  await page.waitForSelector('#edit-error');
  assert.match(await page.locator('#edit-error').textContent(), /expected LAYER:INDEX/);
});

// No test of this file left a page error or a console error (a panic of the
// WebAssembly app is both), whatever it was testing.
test('no page logged an error or a panic', () => {
  assert.deepEqual(pageErrors(), []);
});
