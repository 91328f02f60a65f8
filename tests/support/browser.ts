import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import AxeBuilder from '@axe-core/playwright';
import { serve } from '@hono/node-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { chromium } from 'playwright-core';
import { expect } from 'vitest';
import type { Env } from '../../src/config.js';
import type { TestService } from './service.js';
import { createTestService } from './service.js';

/** Debian's Chromium, which .ci/run installs; playwright-core drives it (it downloads no browser). */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const SCREENSHOTS_DIR = fileURLToPath(new URL('../e2e/screenshots', import.meta.url));

/** The widths each page is looked at: a phone and a desktop. */
export const VIEWPORTS = {
  phone: { width: 375, height: 700 },
  desktop: { width: 1280, height: 800 },
} as const;

/**
 * A headless Chromium; fails with what to do when the browser is not installed. playwright-core gives
 * each launch a fresh profile folder of its own (and removes it on close).
 */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM_PATH}; the browser tests (tests/e2e) need it. ` +
        'Install it with `apt-get update && apt-get install -y chromium` (.ci/run does), or set CHROMIUM_PATH.',
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** The service on a real HTTP server (127.0.0.1, a free port), its PUBLIC_URL that server's address. */
export interface ServedService {
  url: string;
  service: TestService;
  /** Every request the server got, in order: what the browser really sent (preflights included). */
  requests: { method: string; path: string; origin: string | null; contentType: string | null }[];
  close(): Promise<void>;
}

/** Starts the app with @hono/node-server, then builds the service around the port it got. */
export async function serveService(env: Env = {}): Promise<ServedService> {
  let service: TestService | undefined;
  const requests: ServedService['requests'] = [];
  const server = serve({
    fetch: (request) => {
      const { method, headers } = request;
      const path = new URL(request.url).pathname;
      requests.push({
        method,
        path,
        origin: headers.get('origin'),
        contentType: headers.get('content-type'),
      });
      return service ? service.app.fetch(request) : new Response('starting', { status: 503 });
    },
    port: 0,
    hostname: '127.0.0.1',
  }) as Server;
  const url = `http://127.0.0.1:${await listening(server)}`;
  service = await createTestService({ PUBLIC_URL: url, ...env });
  const started = service;
  return {
    url,
    service: started,
    requests,
    async close() {
      await closeServer(server);
      await started.close();
    },
  };
}

/** A static site on its own origin: one page, as a site owner would write it around the pasted snippet. */
export async function serveSite(html: () => string): Promise<{ origin: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html());
  });
  server.listen(0, '127.0.0.1');
  const origin = `http://127.0.0.1:${await listening(server)}`;
  return { origin, close: () => closeServer(server) };
}

/** Runs axe-core in the page and expects no serious or critical violation. */
export async function expectAccessible(page: Page): Promise<void> {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  expect(bad, `accessibility violations on ${page.url()}`).toEqual([]);
}

/** Screenshots the current page at phone and desktop widths, as tests/e2e/screenshots/<name>-<width>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  mkdirSync(SCREENSHOTS_DIR, { recursive: true });
  const original = page.viewportSize();
  for (const [label, size] of Object.entries(VIEWPORTS)) {
    await page.setViewportSize(size);
    await page.screenshot({ path: join(SCREENSHOTS_DIR, `${name}-${label}.png`), fullPage: true });
  }
  if (original) await page.setViewportSize(original);
}

/**
 * What every page must pass: axe in light and dark schemes, no sideways scrolling at 320 px, and
 * screenshots at phone and desktop widths (and the phone in dark mode).
 */
export async function checkPage(page: Page, name: string): Promise<void> {
  await expectAccessible(page);
  await page.emulateMedia({ colorScheme: 'dark' });
  await expectAccessible(page);
  await page.setViewportSize(VIEWPORTS.phone);
  mkdirSync(SCREENSHOTS_DIR, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS_DIR, `${name}-phone-dark.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 320, height: 640 });
  const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - innerWidth');
  expect(overflow, `${name} scrolls sideways at 320 px`).toBeLessThanOrEqual(0);
  await screenshot(page, name);
}

/**
 * A new browser context and page that remember every console error (a CSP violation shows up there) and
 * every failed load, and apart, every console warning. Expected error pages (404, 429) are among the failed
 * loads.
 */
export async function openPage(
  browser: Browser,
  options: Parameters<Browser['newContext']>[0] = {},
): Promise<{ context: BrowserContext; page: Page; consoleErrors: string[]; consoleWarnings: string[] }> {
  const context = await browser.newContext({ viewport: VIEWPORTS.desktop, ...options });
  const page = await context.newPage();
  const consoleErrors: string[] = [];
  const consoleWarnings: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'warning') consoleWarnings.push(message.text());
    // A failed load is recorded below, with its address.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      consoleErrors.push(message.text());
    }
  });
  page.on('response', (response) => {
    // Icons count too: browsers ask for one on every page, and a 404 there is an error in their console.
    if (response.status() >= 400) {
      consoleErrors.push(`${response.status()} ${new URL(response.url()).pathname}`);
    }
  });
  page.on('pageerror', (error) => consoleErrors.push(error.message));
  return { context, page, consoleErrors, consoleWarnings };
}

function listening(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    const done = () => resolve((server.address() as AddressInfo).port);
    if (server.listening) return done();
    server.once('listening', done);
    server.once('error', reject);
  });
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((resolve) => server.close(() => resolve()));
}
