// The studio as a workbench, item by item: charts whose labels are right,
// results and errors where you look, a heatmap you can read and zoom, neuron
// cards, edits you can see, everything in the URL, help, sortable tables,
// dark mode, and a phone screen with no sideways scroll. Screenshots of each
// view at 1440×900 and 390×844 land in e2e/artifacts/.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARTIFACTS, fixture, launchBrowser, startServer, pageErrors } from './harness.mjs';

let server, browser;
const PROMPTS = 'The capital of France is [MASK].\nFrance\'s capital is [MASK].\nThe capital city of France is [MASK].';
const DESK = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };

before(async () => {
  server = await startServer({ models: [fixture('tiny-llama')], experiments: mkdtempSync(join(tmpdir(), 'kn-runs-')) });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function studio(viewport = DESK, path = '/') {
  // Reduced motion: the page jumps to results instead of scrolling smoothly,
  // so what a test measures is where it stays.
  const ctx = await browser.newContext({ viewport, reducedMotion: 'reduce' });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url + path);
  await page.waitForSelector('#model option', { state: 'attached' });
  return { ctx, page, errors };
}

async function analyze(page, { steps = '4', p = '0.6' } = {}) {
  await page.fill('#prompts', PROMPTS);
  await page.fill('#steps', steps);
  await page.fill('#p', p);
  await page.click('#analyze');
  await page.waitForSelector('#analysis #heatmap svg', { timeout: 120_000 });
  const link = await page.locator('#permalink').getAttribute('href');
  const stored = await (await fetch(server.url + '/api/results/' + link.slice(3))).json();
  return { link, result: stored.result };
}

/** Bars (rects of the given fills) and texts of a chart's SVG, with their boxes. */
async function chartParts(page, selector, fills) {
  return page.evaluate(([sel, fills]) => {
    const svg = document.querySelector(`${sel} svg`);
    const box = (e) => { const b = e.getBBox(); return { x: b.x, y: b.y, w: b.width, h: b.height, cx: b.x + b.width / 2, cy: b.y + b.height / 2 }; };
    const scale = svg.getBoundingClientRect().width / svg.viewBox.baseVal.width;
    return {
      bars: [...svg.querySelectorAll('rect')].filter((r) => fills.includes((r.getAttribute('fill') || '').toUpperCase())).map(box),
      texts: [...svg.querySelectorAll('text')].map((t) => ({ ...box(t), text: t.textContent.trim(), anchor: t.getAttribute('text-anchor'), px: parseFloat(t.getAttribute('font-size') || '0') * scale })),
      width: svg.getBoundingClientRect().width,
      box: svg.parentElement.getBoundingClientRect().width,
    };
  }, [selector, fills]);
}

/** A token as the page shows it: Rust's `{:?}` of the string. */
const rustDebug = (s) => JSON.stringify(s).replace(/\\u([0-9a-f]{4})/g, (_, h) => `\\u{${parseInt(h, 16).toString(16)}}`);

const nearest = (texts, pick, key) => texts.filter(pick).reduce((best, t) => (Math.abs(key(t)) < Math.abs(key(best)) ? t : best));

test('1. every bar chart labels its longest bar with the API\'s answer; whole layers; legible text', async () => {
  const { ctx, page, errors } = await studio();
  await page.click('#predict');
  await page.waitForSelector('#topk-chart svg');
  const api = await (await fetch(`${server.url}/api/predict`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'The capital of France is [MASK].', target: 'Paris', top_k: 10 }),
  })).json();
  // A causal model's blank is the position after the prompt, not its last token.
  assert.equal(await page.locator('.tok.blank').count(), 1);
  assert.equal(await page.locator('.tok.blank').getAttribute('id'), 'next-token');
  const top = await chartParts(page, '#topk-chart', ['#3465A4', '#D66028']);
  assert.equal(top.bars.length, api.top_k.length, 'one bar per prediction, no empty category');
  const longest = top.bars.reduce((a, b) => (b.w > a.w ? b : a));
  const label = nearest(top.texts, (t) => t.cx < longest.x, (t) => t.cy - longest.cy);
  assert.equal(label.text, rustDebug(api.top_k[0].token), 'the longest bar is the top-1');
  // Every bar's label is its own token, in rank order from the top.
  const rows = [...top.bars].sort((a, b) => a.cy - b.cy);
  rows.forEach((bar, i) => {
    const l = nearest(top.texts, (t) => t.cx < bar.x, (t) => t.cy - bar.cy);
    assert.equal(l.text, rustDebug(api.top_k[i].token), `bar ${i + 1}`);
  });
  assert.ok(top.texts.every((t) => t.px >= 12), `text at ${Math.min(...top.texts.map((t) => t.px)).toFixed(1)} px`);
  assert.ok(Math.abs(top.width - top.box) <= 2, 'the chart fills its box');

  const { result } = await analyze(page);
  const fx = await chartParts(page, '#effects', ['#3465A4', '#D66028']);
  const groups = ['knowledge', 'baseline', 'random'].slice(0, fx.bars.length / 2);
  assert.equal(fx.bars.length, 2 * groups.length, 'two bars per set, no empty category');
  const effects = [['knowledge', result.suppress.knowledge, result.amplify.knowledge], ['baseline', result.suppress.baseline, result.amplify.baseline], ['random', result.suppress.random, result.amplify.random]]
    .filter(([, s]) => s).flatMap(([n, s, a]) => [[n, s.relative_change], [n, a.relative_change]]);
  const biggest = effects.reduce((a, b) => (Math.abs(b[1]) > Math.abs(a[1]) ? b : a));
  const tallest = fx.bars.reduce((a, b) => (b.h > a.h ? b : a));
  const fxLabel = nearest(fx.texts, (t) => groups.includes(t.text), (t) => t.cx - tallest.cx);
  assert.equal(fxLabel.text, biggest[0], 'the longest effect bar sits over its set\'s name');

  const lc = await chartParts(page, '#layers', ['#B2182B', '#787878']);
  const counts = new Map();
  for (const n of [...result.neurons.knowledge, ...result.neurons.baseline]) counts.set(n.layer, (counts.get(n.layer) || 0) + 1);
  const layerLabels = lc.texts.filter((t) => /^\d+$/.test(t.text) && t.y > Math.max(...lc.bars.map((b) => b.y + b.h)));
  assert.deepEqual(layerLabels.map((t) => t.text).sort(), ['0', '1', '2'], 'whole-number layer ticks, one per layer');
  const high = lc.bars.filter((b) => b.h > 0).reduce((a, b) => (b.h > a.h ? b : a));
  const lcLabel = nearest(layerLabels, () => true, (t) => t.cx - high.cx);
  const perSet = (set, l) => set.filter((n) => n.layer === l).length;
  const best = Math.max(...[0, 1, 2].map((l) => Math.max(perSet(result.neurons.knowledge, l), perSet(result.neurons.baseline, l))));
  assert.ok([0, 1, 2].filter((l) => Math.max(perSet(result.neurons.knowledge, l), perSet(result.neurons.baseline, l)) === best).includes(Number(lcLabel.text)),
    `the tallest bar is over layer ${lcLabel.text}`);
  for (const sel of ['#effects', '#layers', '#heatmap']) {
    const parts = await chartParts(page, sel, []);
    assert.ok(parts.texts.every((t) => t.px >= 12), `${sel}: text at ${Math.min(...parts.texts.map((t) => t.px)).toFixed(1)} px`);
  }
  await page.screenshot({ path: join(ARTIFACTS, 'workbench-analysis-1440.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await ctx.close();
});

test('2. results and errors appear where you look; one answer field; linked views', async () => {
  const { ctx, page } = await studio();
  // Ask: the result beside the form.
  await page.click('#predict');
  await page.waitForSelector('#topk-chart svg');
  // Both boxes at one instant (the page may be scrolling to the result).
  const [form, res] = await page.evaluate(() => ['#ask-form', '#ask .result'].map((s) => document.querySelector(s).getBoundingClientRect().toJSON()));
  assert.ok(res.x > form.x + form.width - 5 && Math.abs(res.y - form.y) < 80, `the predictions sit beside the Ask form: ${JSON.stringify([form, res])}`);
  // An Ask error under the prompt.
  await page.fill('#prompt', 'No blank here.');
  await page.click('#predict');
  await page.waitForSelector('#predict-error');
  // Both boxes at one instant: the page may be scrolling to the error.
  const under = async (field, error) => {
    const [f, e] = await page.evaluate(([a, b]) => [a, b].map((s) => document.querySelector(s).getBoundingClientRect().toJSON()), [field, error]);
    return e.y >= f.y + f.height - 1 && e.y - (f.y + f.height) < 60 && Math.abs(e.x - f.x) < 40;
  };
  assert.ok(await under('#prompt', '#predict-error'), 'the Ask error sits under the prompt');
  // The empty answer: under the answer field, which is scrolled into view.
  await page.fill('#target', '');
  await page.fill('#prompts', PROMPTS);
  await page.click('#analyze');
  await page.waitForSelector('#target-error');
  assert.ok(await under('#target', '#target-error'), 'the missing answer is flagged under the answer field');
  await page.waitForFunction(() => { const r = document.querySelector('#target').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight; });
  await page.fill('#target', 'Paris');
  // A prompt error under the paraphrases.
  await page.fill('#prompts', 'No blank here either.');
  await page.click('#analyze');
  await page.waitForSelector('#analysis-error');
  assert.ok(await under('#prompts', '#analysis-error'), 'the prompt error sits under the paraphrases');
  // A computed analysis: the page scrolls to it.
  await page.evaluate(() => window.scrollTo(0, 0));
  await analyze(page);
  await page.waitForFunction(() => { const r = document.querySelector('#analysis').getBoundingClientRect(); return r.top < innerHeight && r.bottom > 0; });
  // Linked views: a table row selects the neuron in the heatmap and the layer chart, and back.
  const row = page.locator('#knowledge-table tbody tr').first();
  const neuron = await row.getAttribute('data-neuron');
  const [layer, index] = neuron.slice(1).split(':').map(Number);
  await row.click();
  await page.waitForSelector('#heatmap-selection');
  assert.equal(await page.locator('#heatmap-selection').getAttribute('data-layer'), String(layer));
  assert.equal(await page.locator('#heatmap-selection').getAttribute('data-index'), String(index));
  assert.equal(await page.locator('#layers-selection').getAttribute('data-layer'), String(layer));
  assert.match(await row.getAttribute('class'), /selected/);
  const sel = await page.locator('#heatmap-selection').boundingBox();
  await page.locator('#neuron-close').click();
  assert.equal(await page.locator('#heatmap-selection').count(), 0);
  await page.mouse.click(sel.x + sel.width / 2, sel.y + sel.height / 2);
  await page.waitForSelector('#heatmap-selection');
  assert.match(await page.locator(`#knowledge-table tr[data-neuron="${neuron}"]`).getAttribute('class'), /selected/, 'clicking the heatmap selects the row');
  // "Use this fact" fills the answer, the paraphrases and the Ask prompt.
  await page.selectOption('#relation', 'P36');
  await page.fill('#fact-search', 'Italy');
  await page.waitForFunction(() => [...document.querySelectorAll('#fact option')].some((o) => o.textContent === 'Italy → Rome'));
  // The best match first: the subject itself, before "Kingdom of Italy".
  assert.equal(await page.locator('#fact option').first().textContent(), 'Italy → Rome');
  const v = await page.locator('#fact option').filter({ hasText: /^Italy → Rome$/ }).getAttribute('value');
  await page.selectOption('#fact', v);
  await page.click('#use-fact');
  assert.equal(await page.inputValue('#target'), 'Rome');
  assert.match(await page.inputValue('#prompt'), /Italy.*\[MASK\]/);
  assert.ok((await page.inputValue('#prompts')).split('\n').every((l) => l.includes('Italy')));
  assert.ok((await page.inputValue('#prompts')).split('\n').every((l) => !/ [.,;:!?]/.test(l)), 'no space before punctuation');
  // The methods' unrelated fact is a fact of another relation, never this one.
  await page.waitForFunction(() => document.querySelector('#unrelated-target')?.value !== '');
  const control = await page.inputValue('#unrelated-target');
  const controlPrompts = await page.inputValue('#unrelated-prompts');
  assert.notEqual(control, 'Rome');
  assert.ok(controlPrompts.length > 0 && !controlPrompts.includes('Italy'), controlPrompts);
  assert.ok(!controlPrompts.includes('capital'), `a fact of another relation than P36: ${controlPrompts}`);
  // The analysis's same-relation control is another fact of P36: not Rome, not Italy.
  await page.waitForFunction(() => document.querySelector('#control-same-target')?.value !== '');
  const same = await page.inputValue('#control-same-target');
  const samePrompts = await page.inputValue('#control-same-prompts');
  assert.ok(same !== '' && same !== 'Rome', same);
  assert.ok(samePrompts.includes('capital') && !samePrompts.includes('Italy'), samePrompts);
  assert.equal(await page.inputValue('#control-other-target'), control);
  await ctx.close();
});

test('2b. specificity beside the effect: the fact and its controls, with intervals', async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', 'The capital of France is [MASK].\nFrance\'s capital is [MASK].\nThe capital city of France is [MASK].');
  await page.fill('#steps', '4');
  await page.fill('#t', '0.1');
  await page.fill('#p', '0.5');
  // The default controls: Germany → Berlin (same relation), Dante → Florence (another).
  assert.equal(await page.inputValue('#control-same-target'), 'Berlin');
  assert.equal(await page.inputValue('#control-other-target'), 'Florence');
  await page.click('#analyze');
  await page.waitForSelector('#specificity svg', { timeout: 120_000 });
  const link = await page.locator('#permalink').getAttribute('href');
  const stored = await (await fetch(`${server.url}/api/results/${link.slice(3)}`)).json();
  const s = stored.result.specificity;
  assert.deepEqual(stored.request.controls.map((c) => c.target), ['Berlin', 'Florence']);
  assert.ok(stored.request.controls.every((c) => c.target !== 'Paris'), 'a control is never the fact');
  const pct = (x) => `${x < 0 ? '−' : '+'}${(100 * Math.abs(x)).toFixed(1)}%`;
  const rows = await page.locator('#specificity-table tbody tr').count();
  assert.equal(rows, 3);
  for (const [i, r] of s.rows.entries()) {
    const cells = await page.locator(`#specificity-table tbody tr:nth-child(${i + 1}) td`).allTextContents();
    assert.deepEqual(cells, [r.set, r.target, pct(r.change), `${pct(r.lo)} to ${pct(r.hi)}`, String(r.per_prompt.length)]);
  }
  // A dot per prompt, a bar per interval.
  assert.equal(await page.locator('#specificity circle.dot').count(), s.rows.reduce((n, r) => n + r.per_prompt.length, 0));
  assert.equal(await page.locator('#specificity line.ci').count(), 3);
  assert.equal(await page.locator('#specificity-not-specific').count(), s.fact_specific ? 0 : 1);
  assert.match(await page.locator('#specificity-verdict').textContent(), s.fact_specific ? /^Fact-specific/ : /^Not fact-specific/);
  assert.match(await page.locator('#specificity svg').getAttribute('aria-label'), /this fact: [−+]\d/);
  await page.locator('#specificity').screenshot({ path: join(ARTIFACTS, 'specificity.png') });
  await page.close();
});

test('3. the heatmap: colour bar, centred layers, tooltip, zoom, width of its panel', async () => {
  const { ctx, page } = await studio();
  const { result } = await analyze(page);
  const parts = await chartParts(page, '#heatmap', []);
  const texts = parts.texts.map((t) => t.text);
  assert.ok(texts.includes('IG score (probability)'), 'the colour bar says its units');
  const max = Math.max(...result.mean_scores.flat().map(Math.abs));
  const ticks = texts.filter((t) => /^-?\d/.test(t) && Math.abs(Math.abs(Number(t)) - max) <= 1e-3 * max);
  assert.ok(ticks.some((t) => Number(t) > 0) && ticks.some((t) => Number(t) < 0), `symmetric colour bar ±${max}: ${texts.join(' ')}`);
  const layerTicks = parts.texts.filter((t) => /^\d+$/.test(t.text) && t.anchor === 'end').map((t) => t.text);
  assert.deepEqual(layerTicks.sort(), ['0', '1', '2'], 'rows labelled 0..L−1 and no more');
  assert.ok(Math.abs(parts.width - parts.box) <= 2, 'the heatmap takes its panel\'s width');
  // Tooltip.
  await page.locator('#heatmap .svg').scrollIntoViewIfNeeded();
  const box = await page.locator('#heatmap .svg').boundingBox();
  await page.mouse.move(box.x + box.width * 0.45, box.y + box.height * 0.35);
  await page.waitForSelector('#heatmap-tooltip');
  assert.match(await page.locator('#heatmap-tooltip').textContent(), /^layer \d · neuron \d+ · score -?\d/);
  // Zoom by dragging across, then back.
  assert.match(await page.locator('#heatmap-range').textContent(), /neurons 0–127 of 128/);
  await page.mouse.move(box.x + box.width * 0.3, box.y + box.height * 0.4);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.4, { steps: 5 });
  await page.mouse.up();
  await page.waitForFunction(() => !/neurons 0–127/.test(document.querySelector('#heatmap-range').textContent));
  const zoomed = await page.locator('#heatmap-range').textContent();
  const [lo, hi] = zoomed.match(/neurons (\d+)–(\d+)/).slice(1).map(Number);
  assert.ok(hi - lo >= 10 && hi - lo < 60 && /one per cell/.test(zoomed), zoomed);
  // No tooltip of the old range survives the zoom; the next one names a neuron of the new range.
  assert.equal(await page.locator('#heatmap-tooltip').count(), 0, 'the old tooltip is gone');
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.42);
  await page.waitForSelector('#heatmap-tooltip');
  const tip = Number((await page.locator('#heatmap-tooltip').textContent()).match(/neuron (\d+)/)[1]);
  assert.ok(tip >= lo && tip <= hi, `tooltip neuron ${tip} in ${lo}–${hi}`);
  await page.screenshot({ path: join(ARTIFACTS, 'workbench-heatmap-zoom-1440.png') });
  await page.click('#heatmap-reset');
  await page.waitForFunction(() => /neurons 0–127 of 128/.test(document.querySelector('#heatmap-range').textContent));
  await ctx.close();
});

test('4. a neuron card with its own link', async () => {
  const { ctx, page } = await studio();
  const { link } = await analyze(page);
  const row = page.locator('#knowledge-table tbody tr').first();
  const neuron = await row.getAttribute('data-neuron');
  await row.click();
  await page.waitForSelector('#neuron-summary');
  const summary = await page.locator('#neuron-summary').textContent();
  assert.match(summary, /a knowledge neuron(?: and a baseline neuron)?; its score passes the coarse threshold \(t = 0\.2 × the prompt's largest score\) in [23] of 3 prompts/);
  assert.equal(await page.locator('#neuron-prompts tbody tr').count(), 3);
  assert.equal(await page.locator('#neuron-promotes li').count(), 10);
  assert.equal(await page.locator('#neuron-suppresses li').count(), 10);
  // The direction it takes on these prompts, against the slot's own: a
  // negative mean activation raises what the slot points away from.
  const direction = await page.locator('#neuron-direction').textContent();
  const m = direction.match(/mean activation here is (-?[0-9.e+-]+)/);
  assert.ok(m, direction);
  assert.match(direction, /The answer ".+" is number \d+ of the tokens it raises/);
  await page.click('#neuron-slot summary');
  const first = (sel) => page.locator(`${sel} li code`).first().textContent();
  const raised = await first('#neuron-promotes');
  const slotEnd = Number(m[1]) < 0 ? '#neuron-slot-suppresses' : '#neuron-slot-promotes';
  assert.equal(raised, await first(slotEnd));
  const cardLink = await page.locator('#neuron-link').getAttribute('href');
  assert.equal(cardLink, `${link}?neuron=${neuron}`);
  assert.ok(page.url().includes(`neuron=${encodeURIComponent(neuron)}`) || page.url().includes(`neuron=${neuron}`), 'the address names the neuron');
  // Across the dataset browser's relation (P36): a histogram of the API's activations.
  const across = await (await fetch(`${server.url}/api/neuron`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ analysis: link.slice(3), layer: Number(neuron.slice(1).split(':')[0]), index: Number(neuron.split(':')[1]), relation: 'P36' }),
  })).json();
  await page.waitForSelector('#neuron-histogram rect.bar');
  const counts = await page.locator('#neuron-histogram rect.bar').evaluateAll((rs) => rs.map((r) => Number(r.dataset.count)));
  assert.equal(counts.length, 20);
  // Each bar counts the API's activations in its twentieth of the range (the card's mean included in the range).
  const values = across.relation_activations.map((p) => p.activation);
  const lo = Math.min(...values, across.mean_activation), hi = Math.max(...values, across.mean_activation);
  const want = Array(20).fill(0);
  for (const v of values) want[Math.min(19, Math.floor((v - lo) / Math.max(hi - lo, 1e-12) * 20))] += 1;
  assert.deepEqual(counts, want);
  assert.match(await page.locator('#neuron-histogram-caption').textContent(), new RegExp(`^Activation at the blank across ${across.relation_activations.length} facts of P36`));
  // The neuron on a text of the user's: a token each, as the API reads it.
  await page.fill('#neuron-text', 'The capital of France is');
  await page.click('#neuron-text-read');
  await page.waitForSelector('#neuron-text-tokens .tok');
  const [layer, index] = neuron.slice(1).split(':').map(Number);
  const api = await (await fetch(`${server.url}/api/neuron`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ analysis: link.slice(3), layer, index, text: 'The capital of France is' }),
  })).json();
  const shown = await page.locator('#neuron-text-tokens .tok').evaluateAll((ts) => ts.map((t) => [t.textContent, Number(t.dataset.activation)]));
  assert.deepEqual(shown, api.text_activations.map((t) => [t.token, t.activation]));
  await page.locator('#neuron-card').screenshot({ path: join(ARTIFACTS, 'workbench-neuron-card.png') });
  const fresh = await studio(DESK, cardLink);
  await fresh.page.waitForSelector('#neuron-summary', { timeout: 60_000 });
  assert.equal(await fresh.page.locator('#neuron-summary').textContent(), summary);
  await fresh.ctx.close();
  await ctx.close();
});

test('5. edits you can see: stale results, before/after per prompt, warnings', async () => {
  const { ctx, page } = await studio();
  await analyze(page);
  assert.equal(await page.locator('#stale-notice').count(), 0);
  await page.fill('#new-target', 'France');
  await page.fill('#k', '2');
  await page.fill('#lambda2', '100');
  await page.fill('#eval', 'Paris is the capital of [MASK]. | France');
  await page.click('#update');
  await page.waitForSelector('#edit-result', { timeout: 60_000 });
  const headers = await page.locator('#edit-predictions thead').innerText();
  for (const h of ['P(t) before → after', 'rank of t', 'P(t′) before → after', 'rank of t′', 'top-1']) assert.ok(headers.includes(h), h);
  assert.match(await page.locator('#edit-predictions tbody tr').first().innerText(), /\d\.\d{4} → \d\.\d{4}\s+\d+ → \d+\s+\d\.\d{4} → \d\.\d{4}\s+\d+ → \d+/);
  const result = await (await fetch(server.url + '/api/results/' + (await page.locator('#edit-permalink').getAttribute('href')).slice(3))).json();
  const ppl = result.edit.metrics.perplexity[0];
  const tops = new Set(result.edit.predictions.map((p) => p.top1_after));
  const expectWarning = ppl.after > 2 * ppl.before || result.edit.metrics.success_rate === 0 || (tops.size === 1 && !tops.has(' France') && !tops.has('France'));
  assert.equal(await page.locator('#edit-warning').count(), expectWarning ? 1 : 0, 'a warning exactly when the edit went wrong');
  if (ppl.after > 2 * ppl.before) assert.match(await page.locator('#edit-warning').textContent(), /Perplexity on eval rose ×/);
  // The analysis was made before the edit: marked stale, and re-run on request.
  await page.waitForSelector('#edited-banner');
  await page.waitForSelector('#stale-notice');
  assert.match(await page.locator('#heatmap').getAttribute('class'), /stale/);
  await page.click('#rerun');
  await page.waitForFunction(() => /edited by 1 edit set/.test(document.querySelector('#analysis-model-state')?.textContent || ''), null, { timeout: 120_000 });
  assert.equal(await page.locator('#stale-notice').count(), 0);
  await page.screenshot({ path: join(ARTIFACTS, 'workbench-edit-1440.png'), fullPage: true });
  await ctx.close();
});

test('6. every field in the URL, through a reload and a permalink; copy link', async () => {
  const { ctx, page } = await studio();
  await ctx.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
  const values = {
    '#prompt': 'Paris is the capital of [MASK].', '#target': 'France', '#top-k': '7', '#prompts': PROMPTS,
    '#steps': '3', '#t': '0.3', '#p': '0.5', '#new-target': 'Rome', '#k': '3', '#lambda1': '2', '#lambda2': '1.5',
    '#eval': 'Rome is in [MASK]. | Italy', '#erase-neurons': 'L1:5', '#erase-relation': 'P19', '#erase-facts': '3', '#erase-top': '5',
  };
  for (const [sel, v] of Object.entries(values)) await page.fill(sel, v);
  await page.check('#norm-scaled');
  await page.selectOption('#erase-with', 'unk');
  await page.reload();
  await page.waitForSelector('#model option', { state: 'attached' });
  for (const [sel, v] of Object.entries(values)) assert.equal(await page.inputValue(sel), v, `${sel} after a reload`);
  assert.ok(await page.isChecked('#norm-scaled'));
  assert.equal(await page.inputValue('#erase-with'), 'unk');
  await page.click('#copy-link');
  await page.waitForSelector('#copy-status');
  assert.match(await page.locator('#copy-status').textContent(), /Link copied/);
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), page.url());
  // Through a permalink: the analysis's settings come back in a fresh context.
  await page.fill('#target', 'Paris');
  await page.fill('#t', '0.25');
  const { link } = await analyze(page, { steps: '3', p: '0.5' });
  const fresh = await studio(DESK, link);
  await fresh.page.waitForSelector('#analysis #heatmap svg');
  for (const [sel, v] of [['#target', 'Paris'], ['#steps', '3'], ['#t', '0.25'], ['#p', '0.5'], ['#prompts', PROMPTS]]) {
    assert.equal(await fresh.page.inputValue(sel), v, `${sel} from the permalink`);
  }
  await fresh.ctx.close();
  await ctx.close();
});

/** The contrast ratio of text and buttons the first screen shows, each against
 * the first opaque background behind it (WCAG's relative luminance). */
async function contrasts(page) {
  return page.evaluate(() => {
    const rgb = (s) => s.match(/[\d.]+/g).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const behind = (el) => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length < 4 || c[3] > 0) return c.slice(0, 3);
      }
      return [255, 255, 255];
    };
    const checks = [['body text', '#ask-title'], ['hint', '.hint'], ['muted', '.guide .muted'], ['link', '#nav-experiments'],
      ['primary button', '#predict'], ['secondary button', '#copy-link'], ['the blank token', '.tok.blank'], ['help button', 'button.help']];
    return checks.map(([what, sel]) => {
      const el = document.querySelector(sel);
      if (!el) return { what, ratio: 0, fg: 'missing', bg: sel };
      const fg = rgb(getComputedStyle(el).color).slice(0, 3), bg = behind(el);
      const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
      return { what, ratio: (a + 0.05) / (b + 0.05), fg: fg.join(','), bg: bg.join(',') };
    });
  });
}

test('7. help, readable numbers, sortable tables, Ctrl+Enter, dark mode, Experiments empty state', async () => {
  const { ctx, page } = await studio();
  await page.click('label[for="steps"] button.help');
  await page.waitForSelector('#help-m', { state: 'visible' });
  assert.match(await page.locator('#help-m').textContent(), /m steps/);
  await page.keyboard.press('Escape');
  // Ctrl+Enter in the paraphrases runs the analysis.
  await page.fill('#prompts', PROMPTS);
  await page.fill('#steps', '4');
  await page.focus('#prompts');
  await page.keyboard.press('Control+Enter');
  await page.waitForSelector('#analysis #heatmap svg', { timeout: 120_000 });
  // Fixed, readable numbers: no exponents for values above 1e-4.
  const cells = await page.locator('#knowledge-table tbody td.num, #top-neurons tbody td.num').allTextContents();
  assert.ok(cells.every((c) => !/e-0?[1-3]$/.test(c)), cells.join(' '));
  // Sortable: the top-15 table by mean score, then the other way.
  await page.click('#top-details summary');
  const scores = async () => (await page.locator('#top-neurons tbody tr td:nth-child(3)').allTextContents()).map(Number);
  await page.click('#top-neurons th:nth-child(3) button');
  const desc = await scores();
  assert.deepEqual(desc, [...desc].sort((a, b) => b - a));
  await page.click('#top-neurons th:nth-child(3) button');
  const asc = await scores();
  assert.deepEqual(asc, [...asc].sort((a, b) => a - b));
  assert.equal(await page.locator('#top-neurons th:nth-child(3)').getAttribute('aria-sort'), 'ascending');
  await ctx.close();
  // The system's dark mode.
  const dark = await browser.newContext({ viewport: DESK, colorScheme: 'dark' });
  const dp = await dark.newPage();
  await dp.goto(server.url);
  await dp.waitForSelector('#model option', { state: 'attached' });
  const bg = await dp.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  assert.ok(r + g + b < 150, `a dark background (${bg})`);
  // Text and buttons at WCAG AA contrast (4.5:1) in the dark theme, and charts
  // that follow it on screen.
  await dp.waitForSelector('#topk-chart svg');
  for (const c of await contrasts(dp)) assert.ok(c.ratio >= 4.5, `${c.what}: ${c.ratio.toFixed(2)}:1 (${c.fg} on ${c.bg})`);
  assert.match(await dp.evaluate(() => getComputedStyle(document.querySelector('#topk-chart .svg')).filter), /invert/);
  await dp.screenshot({ path: join(ARTIFACTS, 'workbench-dark-1440.png') });
  // The Experiments page without runs shows the command that makes one.
  await dp.goto(server.url + '/?view=experiments');
  await dp.waitForSelector('#no-runs');
  assert.match(await dp.locator('#no-runs').textContent(), /kn experiment run --facts-per-relation 3 --out runs\/sample/);
  await dark.close();
  // And in the light theme.
  const light = await browser.newContext({ viewport: DESK, colorScheme: 'light' });
  const lp = await light.newPage();
  await lp.goto(server.url);
  await lp.waitForSelector('#topk-chart svg');
  for (const c of await contrasts(lp)) assert.ok(c.ratio >= 4.5, `light, ${c.what}: ${c.ratio.toFixed(2)}:1 (${c.fg} on ${c.bg})`);
  await light.close();
});

test('8. a phone: no sideways scroll; screenshots of every view', async () => {
  for (const [vp, tag] of [[PHONE, '390'], [DESK, '1440']]) {
    const { ctx, page } = await studio(vp);
    await page.click('#predict');
    await page.waitForSelector('#topk-chart svg');
    await page.screenshot({ path: join(ARTIFACTS, `workbench-ask-${tag}.png`), fullPage: true });
    await analyze(page);
    await page.locator('#knowledge-table tbody tr').first().click();
    await page.waitForSelector('#neuron-summary');
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(wide <= vp.width, `the page is ${wide} px wide on a ${vp.width} px screen`);
    const top = await chartParts(page, '#topk-chart', []);
    assert.ok(top.texts.every((t) => t.px >= 12), `chart text at ${Math.min(...top.texts.map((t) => t.px)).toFixed(1)} px on ${tag}`);
    await page.screenshot({ path: join(ARTIFACTS, `workbench-studio-${tag}.png`), fullPage: true });
    // No two texts of the heatmap overlap (the axis title and the colour bar's on a phone).
    const heat = await chartParts(page, '#heatmap', []);
    const overlaps = [];
    for (const [i, a] of heat.texts.entries()) {
      for (const b of heat.texts.slice(i + 1)) {
        if (a.text && b.text && a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) overlaps.push(`${a.text} / ${b.text}`);
      }
    }
    await page.locator('#heatmap').screenshot({ path: join(ARTIFACTS, `workbench-heatmap-${tag}.png`) });
    assert.deepEqual(overlaps, [], `heatmap texts overlap on ${tag}`);
    await page.goto(server.url + '/?view=experiments');
    await page.waitForSelector('#no-runs');
    assert.ok(await page.evaluate(() => document.documentElement.scrollWidth) <= vp.width);
    await page.screenshot({ path: join(ARTIFACTS, `workbench-experiments-${tag}.png`), fullPage: true });
    await ctx.close();
  }
});

// No test of this file left a page error or a console error (a panic of the
// WebAssembly app is both), whatever it was testing.
test('9. the first screen: the default question answered, the path, the cost before the job', async () => {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const asked = page.waitForResponse((r) => r.url().endsWith('/api/predict'));
  await page.goto(server.url);
  // Answered on load, without a click: the chart names the API's top answer.
  const answer = await (await asked).json();
  await page.waitForSelector('#topk-chart svg');
  assert.equal(answer.prompt, 'The capital of France is [MASK].');
  assert.ok((await page.locator('#topk-chart').innerHTML()).includes(JSON.stringify(answer.top_k[0].token)));
  // The path through the studio, one sentence a step, each a link to its place.
  const steps = await page.locator('#guide li a').allTextContents();
  assert.deepEqual(steps, ['Ask', 'Find knowledge neurons', 'Suppress and amplify', 'Edit']);
  for (const href of await page.locator('#guide li a').evaluateAll((as) => as.map((a) => a.getAttribute('href')))) {
    assert.equal(await page.locator(href).count(), 1, href);
  }
  // Copy link is a secondary action; the primary buttons are the actions.
  assert.match(await page.getAttribute('#copy-link', 'class'), /secondary/);
  // The analysis's cost before it runs: the API's work units (no job timed yet on a fresh form).
  await page.fill('#prompts', 'The capital of France is [MASK].\nFrance\'s capital is [MASK].');
  await page.fill('#steps', '3');
  await page.waitForFunction(() => /work units/.test(document.querySelector('#analysis-estimate')?.textContent || ''));
  const body = { target: 'Paris', steps: 3, prompts: ['The capital of France is [MASK].', 'France\'s capital is [MASK].'] };
  const est = await (await fetch(`${server.url}/api/estimate/analyze`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body),
  })).json();
  const units = est.units.toLocaleString('en-US');
  await page.waitForFunction((u) => document.querySelector('#analysis-estimate')?.textContent.includes(`${u} work units`), units);
  if (est.seconds !== null) {
    assert.match(await page.locator('#analysis-estimate').textContent(), /^Estimated: (under a second|about \d+ (s|min \d+ s)) on this server/);
  }
  await page.screenshot({ path: join(ARTIFACTS, 'first-screen.png') });
  await page.close();
});

test('10. keyboard only: a table row and the heatmap lead to a neuron card; charts are named', async () => {
  const { ctx, page } = await studio();
  await analyze(page);
  // From the top of the page, Tab reaches the first knowledge-neuron row; Enter opens its card.
  await page.evaluate(() => document.activeElement?.blur());
  let at = null;
  for (let i = 0; i < 400 && !at; i++) {
    await page.keyboard.press('Tab');
    at = await page.evaluate(() => {
      const e = document.activeElement;
      return e?.matches('#knowledge-table tbody tr') ? e.getAttribute('data-neuron') : null;
    });
  }
  assert.ok(at, 'Tab reaches a knowledge-neuron row');
  await page.keyboard.press('Enter');
  await page.waitForFunction((n) => document.querySelector('#neuron-title')?.textContent.includes(n), at);
  assert.equal(await page.getAttribute(`#knowledge-table tr[data-neuron="${at}"]`, 'aria-selected'), 'true');
  // The heatmap takes the focus, and its arrows move the selected neuron: the card follows.
  await page.focus('#heatmap .svg');
  const [layer, index] = at.slice(1).split(':').map(Number);
  await page.keyboard.press('ArrowRight');
  const moved = `L${layer}:${index + 1}`;
  await page.waitForFunction((n) => document.querySelector('#neuron-title')?.textContent.includes(n), moved);
  await page.keyboard.press('ArrowLeft');
  await page.waitForFunction((n) => document.querySelector('#neuron-title')?.textContent.includes(n), at);
  // Every chart has an accessible name.
  const unnamed = await page.evaluate(() => [...document.querySelectorAll('figure.chart')]
    .filter((f) => !f.querySelector('[role=img][aria-label]') && !f.querySelector('svg[role=img][aria-label]'))
    .map((f) => f.id));
  assert.deepEqual(unnamed, []);
  assert.match(await page.getAttribute('#topk-chart [role=img]', 'aria-label'), /^Top predictions at the blank: ".+" \d\.\d{4}/);
  await ctx.close();
});

test('no page logged an error or a panic', () => {
  assert.deepEqual(pageErrors(), []);
});
