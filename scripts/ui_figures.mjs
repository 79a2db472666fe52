// The web app's figures on the offline default model (SmolLM2), not a fixture:
// first paint over a throttled network with the client compressed (as served)
// and uncompressed (the same build without its .br/.gz files), and the
// README's workbench picture.
//
//   KN_BIN=target/debug/kn node scripts/ui_figures.mjs [--no-picture]
//
// Prints a Markdown table for BENCHMARKS.md; writes docs/img/workbench.png.
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, launchBrowser, startServer } from '../e2e/harness.mjs';

const picture = !process.argv.includes('--no-picture');
const RATES = [['9 Mbit/s', 9e6], ['1.6 Mbit/s', 1.6e6]];

/** The client without its precompressed files: what was served before. */
function plainDist() {
  const dir = mkdtempSync(join(tmpdir(), 'kn-dist-plain-'));
  cpSync(join(ROOT, 'dist'), dir, { recursive: true });
  const strip = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) strip(p);
      else if (/\.(br|gz)$/.test(e.name)) rmSync(p);
    }
  };
  strip(dir);
  return dir;
}

/** Load the studio at `bitsPerSecond` (40 ms latency, cold cache). */
async function firstPaint(browser, url, bitsPerSecond) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const page = await ctx.newPage();
  const cdp = await ctx.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 40, downloadThroughput: bitsPerSecond / 8, uploadThroughput: bitsPerSecond / 8,
  });
  await page.goto(url);
  await page.waitForSelector('#model option', { state: 'attached', timeout: 120_000 });
  const m = await page.evaluate(() => {
    const paint = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN;
    const entries = [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')];
    const app = entries.filter((e) => /\.(wasm|js|html)$|\/$/.test(new URL(e.name).pathname));
    return {
      fcp: paint,
      started: performance.now(),
      transferred: app.reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0),
    };
  });
  await ctx.close();
  return m;
}

async function workbenchPicture(browser, url) {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 }, reducedMotion: 'reduce' });
  const page = await ctx.newPage();
  await page.goto(url);
  await page.waitForSelector('#topk-chart svg', { timeout: 120_000 });
  await page.click('#analyze');
  await page.waitForSelector('#analysis #heatmap svg', { timeout: 600_000 });
  const row = page.locator('#knowledge-table tbody tr').first();
  if (await row.count()) {
    await row.click();
    await page.waitForSelector('#neuron-summary', { timeout: 120_000 });
  }
  const box = await page.evaluate(() => {
    const a = document.querySelector('#analysis').getBoundingClientRect();
    const card = document.querySelector('#neuron-card')?.getBoundingClientRect() ?? a;
    return { x: a.x, y: a.y + window.scrollY, width: a.width, height: Math.min(card.bottom - a.top, 2200) };
  });
  await page.screenshot({ path: join(ROOT, 'docs', 'img', 'workbench.png'), fullPage: true, clip: box });
  await ctx.close();
}

const served = await startServer({ models: ['smollm2'] });
const plain = plainDist();
const before = await startServer({ models: ['smollm2'], staticDir: plain });
const browser = await launchBrowser();
try {
  console.log('| network | client | transferred (app files) | first contentful paint | app running |');
  console.log('|---|---|---:|---:|---:|');
  for (const [name, rate] of RATES) {
    for (const [label, s] of [['uncompressed (before)', before], ['brotli (as served)', served]]) {
      const m = await firstPaint(browser, s.url, rate);
      const kb = (m.transferred / 1024).toFixed(0);
      console.log(`| ${name} | ${label} | ${kb} KiB | ${(m.fcp / 1000).toFixed(2)} s | ${(m.started / 1000).toFixed(2)} s |`);
    }
  }
  if (picture) await workbenchPicture(browser, served.url);
} finally {
  await browser.close();
  await served.stop();
  await before.stop();
  rmSync(plain, { recursive: true, force: true });
}
