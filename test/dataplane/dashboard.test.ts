/**
 * The admin dashboard in a real headless browser (Debian's chromium, driven by
 * playwright-core; no browser is downloaded): it loads with no console error,
 * shows a running gateway's routes with live rates and its endpoints' states,
 * follows an endpoint going down, and stays usable with 5,000 routes.
 *
 * `UPDATE_SCREENSHOTS=1` also writes the screenshots docs/observability.md shows.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

/** The page's document, as the functions passed to waitForFunction (run in the browser) use it; the project compiles without DOM types. */
declare const document: { querySelector(selector: string): { textContent: string | null; getAttribute(name: string): string | null } | null };

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? path.resolve(import.meta.dirname, '../../docs/images') : mkdtempSync(path.join(tmpdir(), 'switchyard-shots-'));
mkdirSync(SHOTS, { recursive: true });

/** A browser with a fresh profile (playwright passes it as --user-data-dir); closing it removes the profile. */
async function browser(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  if (!existsSync(CHROMIUM)) throw new Error(`the dashboard tests need Debian's chromium at ${CHROMIUM}: apt-get install chromium (hack/install-test-deps.sh does it as root)`);
  const profile = mkdtempSync(path.join(tmpdir(), 'switchyard-chromium-'));
  const context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS, viewport: { width: 1400, height: 1000 } });
  return {
    context,
    close: async () => {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Opens the dashboard and records every console error and uncaught exception. */
async function open(context: BrowserContext, adminUrl: string): Promise<{ page: Page; errors: string[] }> {
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  // The page cancels its own poll when the view changes (ERR_ABORTED); any other failed request is an error.
  page.on('requestfailed', (r) => {
    if (r.failure()?.errorText !== 'net::ERR_ABORTED') errors.push(`request failed: ${r.url()}: ${r.failure()?.errorText}`);
  });
  await page.goto(`${adminUrl}/dashboard`);
  await page.waitForSelector('#live[data-state="live"]');
  return { page, errors };
}

const get = async (url: string, headers: Record<string, string> = {}): Promise<number> => {
  const res = await request(url, { headers });
  await res.body.dump();
  return res.statusCode;
};

describe('dashboard', () => {
  let b: Awaited<ReturnType<typeof browser>>;
  beforeAll(async () => {
    b = await browser();
  });
  afterAll(async () => {
    await b?.close();
  });

  describe('a running gateway', () => {
    let a: TestUpstream;
    let c: TestUpstream;
    let gw: TestGateway;
    beforeAll(async () => {
      a = await startUpstream(echo('a'));
      c = await startUpstream(echo('c'));
      gw = await startGateway({
        routes: [
          { name: 'users', path: '/api/v1/users/{id}', methods: ['GET'], upstream: 'users' },
          { name: 'orders', path: '/api/v1/orders', path_type: 'Prefix', upstream: 'orders' },
          { name: 'admin', path: '/api/v1/admin', path_type: 'Prefix', upstream: 'users', auth_required: true },
        ],
        upstreams: {
          users: {
            discovery: { type: 'Static', endpoints: [a.url, c.url] },
            health_check: { path: '/health', interval: '200ms', timeout: '200ms', unhealthy_threshold: 1, healthy_threshold: 1 },
            circuit_breaker: { failure_threshold: 50, timeout: '30s' },
          },
          orders: { discovery: { type: 'Static', endpoints: [a.url] }, outlier_detection: {} },
        },
        auth: { jwt: { secret: 'dashboard-test-secret-0123456789-abcdef' } },
        observability: { logging: { access_log: false } },
      });
    });
    afterAll(async () => {
      await gw?.stop();
      await a?.close();
      await c?.close();
    });

    it('loads with no console error and shows the routes, their traffic and the endpoints', async () => {
      const { page, errors } = await open(b.context, gw.adminUrl);
      for (let i = 0; i < 20; i++) await get(`${gw.url}/api/v1/users/${i}`);
      await get(`${gw.url}/api/v1/admin/x`);
      await get(`${gw.url}/nowhere`);
      // The rates are differences between polls: wait until one shows the traffic.
      await page.waitForFunction(() => ['users', 'admin'].every((id) => Number(document.querySelector(`[data-route="${id}"] [data-field="rps"]`)?.textContent) > 0));
      expect(await page.locator('tr[data-route]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-route')))).toEqual(['users', 'admin', 'orders']);
      expect(await page.textContent('[data-route="users"] [data-field="p99"]')).toMatch(/µs|ms/);
      expect(await page.textContent('#table-version')).toContain(gw.gw.holder.current?.version as string);
      expect(await page.textContent('#table-source')).toBe(gw.configFile);
      await page.waitForSelector('[data-code="route_not_found"]');
      await page.waitForSelector('[data-code="unauthorized"]');
      for (const origin of [a.url, c.url]) expect(await page.getAttribute(`[data-upstream="users"] [data-endpoint="${origin}"]`, 'data-state')).toBe('eligible');
      expect(await page.getAttribute('[data-upstream="users"] [data-breaker]', 'data-breaker')).toBe('closed');
      expect(await page.textContent(`[data-upstream="orders"] [data-endpoint="${a.url}"]`)).toContain('in rotation');
      await page.screenshot({ path: path.join(SHOTS, 'dashboard.png') });
      expect(errors).toEqual([]);
      await page.close();
    });

    it('shows an endpoint going out of rotation, and the last reload that was refused', async () => {
      const { page, errors } = await open(b.context, gw.adminUrl);
      await page.waitForSelector(`[data-endpoint="${c.url}"][data-state="eligible"]`);
      await c.close();
      // The health check runs every 200 ms; the page polls every second.
      await page.waitForSelector(`[data-upstream="users"] [data-endpoint="${c.url}"][data-state="down"]`, { timeout: 10_000 });
      expect(await page.textContent(`[data-upstream="users"] [data-endpoint="${c.url}"]`)).toContain('failing');
      expect(await page.getAttribute(`[data-upstream="users"] [data-endpoint="${a.url}"]`, 'data-state')).toBe('eligible');
      gw.writeConfig({ routes: [{ path: '/x', upstream: 'missing-field-' }], upstreams: 'not a map' });
      await gw.gw.reload('test');
      await page.waitForSelector('#last-attempt [data-result="rejected"]');
      expect(await page.textContent('#last-attempt')).toContain('upstreams');
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-endpoint-down.png') });
      expect(errors).toEqual([]);
      await page.close();
    });

    it('keeps trying when the gateway stops answering, and says so', async () => {
      const { page, errors } = await open(b.context, gw.adminUrl);
      await page.route('**/dashboard/api/state**', (route) => route.abort());
      await page.waitForSelector('#live[data-state="stale"]');
      await page.unroute('**/dashboard/api/state**');
      await page.waitForSelector('#live[data-state="live"]');
      // The refused polls are the only failures.
      expect(errors.length).toBeGreaterThan(0);
      expect(errors.every((e) => e.includes('/dashboard/api/state') || e.includes('net::ERR_FAILED'))).toBe(true);
      await page.close();
    });
  });

  describe('5,000 routes', () => {
    let up: TestUpstream;
    let gw: TestGateway;
    beforeAll(async () => {
      up = await startUpstream(echo('bulk'));
      const routes = Array.from({ length: 5000 }, (_, i) => ({ name: `route-${String(i).padStart(4, '0')}`, path: `/svc/${i}/items/{id}`, methods: ['GET'], upstream: `u${i % 50}` }));
      const upstreams = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`u${i}`, { discovery: { type: 'Static', endpoints: [up.url] } }]));
      gw = await startGateway({ routes, upstreams, observability: { logging: { access_log: false } } });
    }, 60_000);
    afterAll(async () => {
      await gw?.stop();
      await up?.close();
    });

    it('pages, searches and sorts without loading every route into the page', async () => {
      const { page, errors } = await open(b.context, gw.adminUrl);
      expect(await page.textContent('#route-range')).toBe('1–50 of 5000');
      expect(await page.locator('tr[data-route]').count()).toBe(50);
      expect(await page.textContent('#upstream-range')).toBe('1–20 of 50');
      for (let i = 0; i < 5; i++) await get(`${gw.url}/svc/4321/items/${i}`);
      // Sorted by requests/s, the one route with traffic comes first.
      await page.waitForFunction(() => document.querySelector('tr[data-route]')?.getAttribute('data-route') === 'route-4321');
      await page.selectOption('#route-sort', 'name');
      await page.waitForFunction(() => document.querySelector('tr[data-route]')?.getAttribute('data-route') === 'route-0000');
      await page.click('#route-next');
      await page.waitForFunction(() => document.querySelector('#route-range')?.textContent === '51–100 of 5000');
      expect(await page.getAttribute('tr[data-route]', 'data-route')).toBe('route-0050');
      await page.fill('#route-search', 'route-12');
      await page.waitForFunction(() => document.querySelector('#route-range')?.textContent === '1–50 of 100');
      await page.fill('#route-search', '/svc/4999/');
      await page.waitForFunction(() => document.querySelector('#route-range')?.textContent === '1–1 of 1');
      expect(await page.getAttribute('tr[data-route]', 'data-route')).toBe('route-4999');
      await page.fill('#upstream-search', 'u7');
      await page.waitForFunction(() => document.querySelector('#upstream-range')?.textContent === '1–1 of 1');
      await page.fill('#route-search', '');
      await page.fill('#upstream-search', '');
      await page.waitForFunction(() => document.querySelector('#route-range')?.textContent === '1–50 of 5000' && document.querySelector('#upstream-range')?.textContent === '1–20 of 50');
      await page.screenshot({ path: path.join(SHOTS, 'dashboard-5000-routes.png') });
      expect(errors).toEqual([]);
      await page.close();
    });
  });
});
