// The methods lab in the browser: compare attribution methods on the page's
// fact, read the cost table, the change-of-P-vs-k curves and the overlap
// matrices, export a curve, and reopen the comparison from its permalink in a
// fresh browser context (the same numbers, the same form).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, fixture, launchBrowser, startServer, pageErrors } from './harness.mjs';

let server, browser;

before(async () => {
  server = await startServer({ models: [fixture('tiny-llama')] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

async function numbers(page) {
  await page.waitForSelector('#methods-effects tbody tr');
  return {
    effects: await page.locator('#methods-effects tbody').innerText(),
    jaccard: await page.locator('#jaccard table').innerText(),
    spearman: await page.locator('#spearman table').innerText(),
  };
}

test('compare methods, read the curves, export, reopen from the permalink', async () => {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(server.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#target', 'Paris');
  await page.fill('#prompts', "The capital of France is [MASK].\nFrance's capital is [MASK].");
  await page.fill('#steps', '4');
  // Five methods (untick random), k = 1, 3.
  await page.uncheck('#method-random');
  await page.fill('#ks', '1,3');
  await page.click('#compare');
  await page.waitForSelector('#methods-result', { timeout: 120_000 });
  const cost = await page.locator('#methods-cost tbody tr').count();
  assert.equal(cost, 5, 'one cost row per method');
  assert.equal(await page.locator('#methods-effects tbody tr').count(), 10, 'one row per method and k');
  for (const id of ['#suppress-curve', '#amplify-curve', '#suppress-unrelated-curve']) {
    assert.ok(await page.locator(`${id} svg circle`).count() >= 10, `${id}: a point per method and k`);
  }
  // The curves show the API's numbers: the legend lists the methods in the
  // result's order, and every point sits where its value puts it on one linear
  // y axis (fitted on two points, checked on all), in the k order of the result.
  const id = page.url().match(/\/r\/([0-9a-f]{20})/)[1];
  const stored = await page.evaluate(async (id) => (await fetch(`/api/results/${id}`)).json(), id);
  const api = stored.methods;
  for (const [chart, pick] of [['#suppress-curve', (e) => e.suppress], ['#amplify-curve', (e) => e.amplify], ['#suppress-unrelated-curve', (e) => e.suppress_unrelated]]) {
    const drawn = await page.locator(`${chart} svg`).evaluate((svg) => ({
      // (The legend is laid out from the right: its last entry comes first.)
      legend: [...svg.querySelectorAll('text')].map((t) => t.textContent.trim()).filter((t) => t.startsWith('● ')).reverse(),
      all: [...svg.querySelectorAll('text')].map((t) => t.textContent),
      points: [...svg.querySelectorAll('circle')].map((c) => [Number(c.getAttribute('cx')), Number(c.getAttribute('cy'))]),
      ks: [...svg.querySelectorAll('text')].map((t) => t.textContent.trim()).filter((t) => t.startsWith('k = ')),
    }));
    assert.deepEqual(drawn.legend, api.methods.map((m) => `● ${m.method}`), `${chart}: legend in ${JSON.stringify(drawn.all)}`);
    assert.deepEqual(drawn.ks, api.ks.map((k) => `k = ${k}`), `${chart}: k labels`);
    const values = api.methods.flatMap((m) => m.by_k.map((e) => 100 * pick(e)));
    assert.equal(drawn.points.length, values.length, `${chart}: one point per method and k`);
    // Points are drawn method by method, k by k: x follows k, y follows the value.
    const xs = api.ks.map((_, i) => drawn.points[i][0]);
    drawn.points.forEach(([x], i) => assert.ok(Math.abs(x - xs[i % api.ks.length]) < 0.5, `${chart}: point ${i} at its k`));
    const [a, b] = [0, values.findIndex((v) => Math.abs(v - values[0]) > 1)];
    assert.ok(b > 0, `${chart}: two distinct values to fit the axis`);
    const slope = (drawn.points[b][1] - drawn.points[a][1]) / (values[b] - values[a]);
    assert.ok(slope < 0, `${chart}: larger changes are drawn higher`);
    values.forEach((v, i) => {
      const expected = drawn.points[a][1] + slope * (v - values[a]);
      assert.ok(Math.abs(drawn.points[i][1] - expected) < 1.5, `${chart}: point ${i} (${v.toFixed(2)}%) at y ${drawn.points[i][1]}, expected ${expected.toFixed(1)}`);
    });
  }
  // Specificity: every method's top k (k = 3, the largest here below 5) cut
  // on the fact, the unrelated fact and the default same-relation control
  // (Berlin), with the API's changes and intervals, a dot per prompt, and
  // the verdict the intervals give.
  assert.deepEqual(stored.request.controls.map((c) => [c.kind, c.target]), [['same relation', 'Berlin']]);
  await page.waitForSelector('#methods-specificity tbody tr');
  assert.equal(await page.locator('#methods-specificity-k').inputValue(), '1');
  await page.selectOption('#methods-specificity-k', '3');
  const pct = (v) => `${v < 0 ? '−' : '+'}${(100 * Math.abs(v)).toFixed(1)}%`;
  const ci = (r) => `${pct(r.change)} [${pct(r.lo)}, ${pct(r.hi)}]`;
  const rows = await page.locator('#methods-specificity tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  assert.equal(rows.length, api.methods.length);
  api.methods.forEach((m, i) => {
    const s = m.by_k.find((e) => e.k === 3).specificity;
    assert.deepEqual(s.rows.map((r) => r.set), ['this fact', 'unrelated', 'same relation']);
    assert.deepEqual(rows[i], [
      m.method,
      ci(s.rows[0]),
      s.rows.slice(1).map((r) => `${r.set} (${r.target}): ${ci(r)}`).join('; '),
      s.fact_specific ? 'fact-specific' : 'not fact-specific',
    ]);
  });
  await page.selectOption('#methods-specificity-method', 'activation');
  const act = api.methods.find((m) => m.method === 'activation').by_k.find((e) => e.k === 3).specificity;
  await page.waitForFunction(() => document.querySelector('#methods-specificity-chart-title')?.textContent.startsWith("activation's top 3"));
  assert.equal(await page.locator('#methods-specificity-chart circle.dot').count(), act.rows.reduce((n, r) => n + r.per_prompt.length, 0));
  assert.equal(await page.locator('#methods-specificity-chart line.ci').count(), 3);
  assert.equal(await page.locator('#methods-specificity-chart-not-specific').count(), act.fact_specific ? 0 : 1);
  assert.match(await page.locator('#methods-specificity-chart svg').getAttribute('aria-label'), /this fact: [−+]\d/);
  await page.locator('#methods-specificity-box').screenshot({ path: join(ARTIFACTS, 'methods-specificity.png') });

  const before = await numbers(page);
  assert.match(before.effects, /ig\s+1\s+[+-]\d+\.\d%/);
  assert.doesNotMatch(before.effects, /random/);
  await page.screenshot({ path: join(ARTIFACTS, 'methods.png'), fullPage: true });
  assert.match(page.url(), /\/r\/[0-9a-f]{20}/, 'the address bar holds the permalink');
  assert.match(page.url(), /methods=ig%2Cig-masked-baseline%2Cactivation%2Cgrad-x-act%2Clogprob-increase(&|$)/);

  // Export: the suppress curve's SVG and its CSV.
  const [svgDl] = await Promise.all([page.waitForEvent('download'), page.locator('#suppress-curve a', { hasText: 'SVG' }).click()]);
  const svg = readFileSync(await svgDl.path(), 'utf8');
  assert.ok(svg.startsWith('<svg') && svg.includes('</svg>'), 'a valid SVG file');
  const [csvDl] = await Promise.all([page.waitForEvent('download'), page.locator('#suppress-curve a', { hasText: 'CSV' }).click()]);
  const csv = readFileSync(await csvDl.path(), 'utf8').trim().split('\n');
  assert.equal(csv[0], 'method,k,suppress,amplify,suppress_unrelated,amplify_unrelated');
  assert.equal(csv.length, 11);

  // The permalink, path only, in a fresh context: the same numbers and form.
  const path = new URL(page.url()).pathname;
  assert.equal(await page.locator('#methods-permalink').getAttribute('href'), path, 'the permalink is a link');
  const fresh = await browser.newContext();
  const p2 = await fresh.newPage();
  p2.on('pageerror', (e) => errors.push(String(e)));
  await p2.goto(server.url + path);
  const again = await numbers(p2);
  assert.deepEqual(again, before);
  assert.equal(await p2.locator('#ks').inputValue(), '1,3');
  assert.equal(await p2.locator('#method-random').isChecked(), false);
  assert.equal(await p2.locator('#method-ig').isChecked(), true);
  assert.equal(await p2.locator('#control-same-target').inputValue(), 'Berlin', 'the control comes back with the permalink');
  assert.equal(await p2.locator('#methods-specificity tbody tr').count(), 5);
  await fresh.close();
  await ctx.close();
  assert.deepEqual(errors, []);
});

// No test of this file left a page error or a console error (a panic of the
// WebAssembly app is both), whatever it was testing.
test('no page logged an error or a panic', () => {
  assert.deepEqual(pageErrors(), []);
});
