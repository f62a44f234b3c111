/**
 * What each browser test file starts: a real runbook service with the browser tests' runbooks (e2e/runbooks.mjs),
 * the page server in front of it (server.ts) and headless Chromium; plus the checks every page gets (no page
 * error, no console error of ours, no failed request to our paths).
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import type { GrafanaUser } from '../src/test/grafana-proxy.ts';
import { launchChromium } from './browser.ts';
import { HOST_BUILD_DIR } from './host/build.ts';
import './host/state.ts';
import { startHostServer } from './server.ts';
import { BROWSER_RUNBOOKS_MODULE, type RunbookService, startService } from './service.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
export const ARTIFACTS = join(packageDir, 'e2e', 'artifacts');
export const PLUGIN_ID = 'aiwebtest-runbooks-app';

/** A run as `GET /runs/:id` gives it. */
export interface RunDetail {
  run: {
    id: string;
    runbookId: string;
    mode: string;
    status: string;
    requestedBy: string;
    input: Record<string, unknown>;
    context?: Record<string, unknown> | null;
  };
  approvals?: Array<{ status: string; decidedBy?: string | null }>;
  plans?: Array<{ destructive: boolean; risk: string }>;
}

/** The test runbooks' world (undefined until a plan was applied: the runbooks write it on first change). */
export interface World {
  agents: Record<string, { replicas: number; debug: boolean }>;
  database: { primary: string };
  queues?: Record<string, { depth: number }>;
}

export interface BrowserFixture {
  service: RunbookService;
  host: Awaited<ReturnType<typeof startHostServer>>;
  browser: Awaited<ReturnType<typeof launchChromium>>;
  readWorld(): World | undefined;
  /** The runs the service holds (newest first), read with the admin token. */
  runs(query?: string): Promise<RunDetail['run'][]>;
  waitForRunStatus(runId: string, status: string): Promise<RunDetail>;
  close(): Promise<void>;
}

export async function startFixture(user: GrafanaUser): Promise<BrowserFixture> {
  mkdirSync(ARTIFACTS, { recursive: true });
  const service = await startService({ runbooksModule: BROWSER_RUNBOOKS_MODULE });
  const host = await startHostServer({
    distDir: join(packageDir, 'dist'),
    hostBuildDir: HOST_BUILD_DIR,
    serviceUrl: service.url,
    serviceToken: service.grafanaToken,
    user,
  });
  const browser = await launchChromium();
  return {
    service,
    host,
    browser,
    readWorld: () =>
      existsSync(service.worldFile)
        ? (JSON.parse(readFileSync(service.worldFile, 'utf8')) as World)
        : undefined,
    runs: async (query = '') =>
      (await service.get<{ runs: RunDetail['run'][] }>(`runs?limit=100${query}`)).runs,
    async waitForRunStatus(runId, status) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        const detail = await service.get<RunDetail>(`runs/${runId}`);
        if (detail.run.status === status) return detail;
        if (Date.now() > deadline) throw new Error(`run ${runId} is ${detail.run.status}, not ${status}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    async close() {
      await browser.close();
      await host.close();
      await service.stop();
    },
  };
}

/** What went wrong on a page: uncaught errors, console errors, and failed requests to our own paths. */
export function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error' && message.type() !== 'warning') return;
    const text = message.text();
    const location = message.location().url;
    // Fonts and icons are served by Grafana itself, not by the npm packages: their 404s are expected here.
    if (/^Failed to load resource/.test(text) && !location.includes(`/public/plugins/${PLUGIN_ID}/`)) return;
    if (message.type() === 'warning' && !location.includes(`/public/plugins/${PLUGIN_ID}/`)) return;
    problems.push(`console.${message.type()}: ${text} (${location})`);
  });
  page.on('response', (response) => {
    const url = new URL(response.url());
    const ours = url.pathname.startsWith(`/public/plugins/${PLUGIN_ID}/`) || url.pathname.startsWith('/api/');
    if (ours && response.status() >= 400) problems.push(`HTTP ${response.status()} ${url.pathname}`);
  });
  return problems;
}

/** Opens a host page (`/a/<id>…` or `/d/<uid>`) and waits until the host has loaded the plugin. */
export async function openHostPage(
  page: Page,
  hostUrl: string,
  path: string,
  expected: 'rendered' | 'ready',
) {
  await page.goto(`${hostUrl}${path}`);
  await page.waitForFunction(() => window.__host?.phase !== 'loading', undefined, { timeout: 30_000 });
  const state = await page.evaluate(() => ({ phase: window.__host.phase, error: window.__host.error }));
  expect(state.error ?? '').toBe('');
  expect(state.phase).toBe(expected);
}

/** `color` as the browser computes it (`rgb(…)`), so colours written in any CSS form compare equal. */
export function computedColor(page: Page, color: string): Promise<string> {
  return page.evaluate((value) => {
    const probe = document.createElement('div');
    probe.style.color = value;
    document.body.append(probe);
    const computed = getComputedStyle(probe).color;
    probe.remove();
    return computed;
  }, color);
}
