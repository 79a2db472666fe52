// Shared helpers: start `kn serve` on a free port, launch Debian's Chromium.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ARTIFACTS = join(ROOT, 'e2e', 'artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

export function fixture(name) {
  return join(ROOT, 'fixtures', 'models', name);
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** Run the `kn` command line to completion; throw with its output if it fails. */
export function kn(args) {
  const bin = process.env.KN_BIN || join(ROOT, 'target', 'debug', 'kn');
  const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, KN_LOG: 'warn' } });
  if (r.status !== 0) throw new Error(`kn ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Start `kn serve` and wait until /api/health answers. */
export async function startServer({ models, dataDir, experiments, extraArgs = [], staticDir = join(ROOT, 'dist') }) {
  const port = await freePort();
  const bin = process.env.KN_BIN || join(ROOT, 'target', 'debug', 'kn');
  dataDir = dataDir || mkdtempSync(join(tmpdir(), 'kn-e2e-'));
  const args = ['serve', '--port', String(port), '--data-dir', dataDir, '--static-dir', staticDir, '--device', 'cpu'];
  for (const m of models) args.push('--model', m);
  if (experiments) args.push('--experiments', experiments);
  args.push(...extraArgs);
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`kn serve exited: ${log}`);
    try {
      const r = await fetch(`${url}/api/health`);
      if (r.ok) return { url, proc, dataDir, extraArgs, log: () => log, stop: () => stop(proc) };
    } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.kill('SIGKILL');
  throw new Error(`kn serve did not start in 60 s: ${log}`);
}

function stop(proc) {
  return new Promise((resolve) => {
    if (proc.exitCode !== null) return resolve();
    proc.on('exit', () => resolve());
    proc.kill('SIGINT');
    setTimeout(() => proc.kill('SIGKILL'), 5000);
  });
}

const WATCHED = [];

/// Chromium, with every page it opens watched for errors (`pageErrors`): a
/// browser test file ends with none, whatever its tests did.
export async function launchBrowser() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-quic', '--no-first-run', '--disable-sync'],
  });
  const seen = new WeakSet();
  const track = (page) => {
    // `browser.newPage` opens its page through `newContext`: watch it once.
    if (!seen.has(page)) {
      seen.add(page);
      WATCHED.push({ url: () => page.url(), errors: watchErrors(page) });
    }
    return page;
  };
  const newPage = browser.newPage.bind(browser);
  browser.newPage = async (...args) => track(await newPage(...args));
  const newContext = browser.newContext.bind(browser);
  browser.newContext = async (...args) => {
    const ctx = await newContext(...args);
    ctx.on('page', track);
    return ctx;
  };
  return browser;
}

/// The errors of every page this process's browsers opened, with the page.
export function pageErrors() {
  return WATCHED.flatMap((w) => w.errors.map((e) => `${w.url()}: ${e}`));
}

/// Every uncaught page error and every console error of `page` (a Rust panic
/// is logged by console_error_panic_hook as a console error, and the wasm
/// trap after it as a page error). A refused request logs the browser's own
/// "Failed to load resource" line: that is the server answering, not a fault
/// of the page, and is left out.
export function watchErrors(page) {
  const errors = [];
  page.on('pageerror', (e) => errors.push(`pageerror: ${e}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) {
      errors.push(`console: ${m.text()}`);
    }
  });
  return errors;
}
