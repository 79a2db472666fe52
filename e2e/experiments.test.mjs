// The Experiments page: a real `kn experiment run` and `report` on a fixture
// model and real ParaRel facts, listed by the server, shown with the paper's
// table, per-relation effects and charts, exported, and reopened from its link.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ARTIFACTS, fixture, kn, launchBrowser, startServer, pageErrors } from './harness.mjs';

let server, browser, out;

before(async () => {
  const runs = mkdtempSync(join(tmpdir(), 'kn-runs-'));
  out = join(runs, 'tiny-sample');
  // One-token answers: the report's fact updates need them, and this fixture's
  // tokenizer splits 2,104 of these relations' 2,343 answers.
  kn(['experiment', 'run', '--model', fixture('tiny-gpt2'), '--relations', 'P36,P19,P101',
    '--facts-per-relation', '3', '--one-token-answers', '--out', out, '--quiet', '--device', 'cpu']);
  kn(['experiment', 'report', out, '--device', 'cpu', '--methods', 'ig,grad-x-act,activation,random',
    '--methods-facts', '2']);
  // A second run without a report yet.
  kn(['experiment', 'run', '--model', fixture('tiny-gpt2'), '--relations', 'P36',
    '--facts-per-relation', '1', '--out', join(runs, 'unreported'), '--quiet', '--device', 'cpu']);
  server = await startServer({ models: [fixture('tiny-gpt2')], experiments: runs });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

test('list runs, open a report, export a chart, share the link', async () => {
  const ctx = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(server.url + '/');
  await page.click('#nav-experiments');
  await page.waitForSelector('#runs tbody tr');
  const runs = await page.locator('#runs tbody').innerText();
  assert.match(runs, /tiny-sample\s+\S*tiny-gpt2\s+9\s+3\s+yes/);
  assert.match(runs, /unreported.*not yet/);
  await page.click('#runs a:text("tiny-sample")');
  await page.waitForSelector('#report #beside-paper');
  const beside = await page.locator('#beside-paper tbody').innerText();
  assert.match(beside, /neurons per fact\s+4\.13\s+tuned to 2–5\s+\d+\.\d\d/);
  const rels = await page.locator('#relations tbody').innerText();
  for (const id of ['P19 place of birth', 'P36 capital', 'P101 field of work']) assert.ok(rels.includes(id), rels);
  // Suppressing knowledge neurons lowers P(answer): a negative percentage in the KN column.
  assert.match(await page.locator('#relations tbody tr:first-child td:nth-child(6)').innerText(), /^-\d/);
  for (const id of ['suppress', 'amplify', 'layers', 'bingrel', 'update', 'update_k', 'erase']) {
    await page.waitForSelector(`figure#${id} svg`);
  }
  // The methods compared over the run, overall and per relation, as the report's JSON has them.
  const ms = JSON.parse(readFileSync(join(out, 'report', 'report.json'), 'utf8')).methods;
  assert.deepEqual(
    await page.locator('#methods-at-scale tbody td:first-child').allInnerTexts(),
    ms.rows.map((r) => r.method),
  );
  assert.ok(ms.by_relation.length >= ms.rows.length, 'at least one relation compared');
  await page.click('#methods-by-relation summary');
  const relRows = page.locator('#methods-by-relation tbody tr');
  assert.equal(await relRows.count(), ms.by_relation.length / ms.rows.length);
  const first = await relRows.first().locator('td').allInnerTexts();
  assert.equal(first[0], ms.by_relation[0].relation);
  assert.equal(Number(first[1]), ms.by_relation[0].facts);
  assert.equal(first.length, 2 + ms.rows.length, 'one cell per method');
  await page.screenshot({ path: join(ARTIFACTS, 'experiments.png'), fullPage: true });

  const [svgDl] = await Promise.all([page.waitForEvent('download'), page.locator('#suppress a', { hasText: 'SVG' }).click()]);
  assert.equal(svgDl.suggestedFilename(), 'kn-tiny-sample-suppress.svg');
  const svg = readFileSync(await svgDl.path(), 'utf8');
  assert.ok(svg.startsWith('<svg') && svg.includes('P36'), 'the per-relation chart');
  const [csvDl] = await Promise.all([page.waitForEvent('download'), page.locator('#suppress a', { hasText: 'CSV' }).click()]);
  assert.equal(readFileSync(await csvDl.path(), 'utf8').split('\n')[0], 'category,knowledge,baseline,random');
  const [mdDl] = await Promise.all([page.waitForEvent('download'), page.locator('#report a', { hasText: 'Markdown' }).click()]);
  const md = readFileSync(await mdDl.path(), 'utf8');
  assert.match(md, /^# Knowledge neurons on ParaRel: `tiny-sample`/);
  // The Markdown the page offers is the file `kn experiment report` wrote.
  assert.equal(md, readFileSync(join(out, 'report', 'report.md'), 'utf8'));

  // The share link reopens the same report in a fresh context.
  const link = await page.locator('#share-link').getAttribute('href');
  assert.equal(link, '/?view=experiments&run=tiny-sample');
  const p2 = await (await browser.newContext()).newPage();
  await p2.goto(server.url + link);
  await p2.waitForSelector('#report #beside-paper');
  assert.equal(await p2.locator('#beside-paper tbody').innerText(), beside);
  assert.equal(await p2.locator('#relations tbody').innerText(), rels);

  // A run without a report says how to make one.
  await p2.goto(server.url + '/?view=experiments&run=unreported');
  await p2.waitForSelector('#report-error');
  assert.match(await p2.locator('#report-error').innerText(), /kn experiment report/);
  assert.deepEqual(errors, []);
});

// No test of this file left a page error or a console error (a panic of the
// WebAssembly app is both), whatever it was testing.
test('no page logged an error or a panic', () => {
  assert.deepEqual(pageErrors(), []);
});
