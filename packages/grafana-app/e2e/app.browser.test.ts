/**
 * The built plugin in a real browser, loaded the way Grafana's frontend loads an app plugin: headless
 * Chromium opens a host page that provides the real React, @grafana/data, @grafana/ui, @grafana/runtime,
 * rxjs, emotion and react-router as SystemJS modules, imports dist/module.js (AMD) from
 * /public/plugins/<id>/, calls `init(meta)` and renders the root page at /a/<id>, talking to a real
 * `runbook serve` through the component tests' double of Grafana's plugin proxy (src/test/grafana-proxy.ts).
 *
 * It proves the AMD output, the externals, the bundled router and the real UI in a browser. It does not
 * prove Grafana's own parts (extension registry, nav, its real proxy auth and RBAC): those are covered by
 * the unit tests of plugin.json and the component tests.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './browser.ts';
import { HOST_BUILD_DIR } from './host/build.ts';
import './host/state.ts';
import { watch } from './fixture.ts';
import { startHostServer } from './server.ts';
import { type RunbookService, startService } from './service.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const ARTIFACTS = join(packageDir, 'e2e', 'artifacts');
const PLUGIN_ID = 'aiwebtest-runbooks-app';

let service: RunbookService;
let host: Awaited<ReturnType<typeof startHostServer>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  service = await startService();
  host = await startHostServer({
    distDir: join(packageDir, 'dist'),
    hostBuildDir: HOST_BUILD_DIR,
    serviceUrl: service.url,
    serviceToken: service.grafanaToken,
    user: { login: 'grace', role: 'Editor', userId: 7 },
  });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await host?.close();
  await service?.stop();
});

async function openApp(page: Page, path = '') {
  await page.goto(`${host.url}/a/${PLUGIN_ID}${path}`);
  await page.waitForFunction(() => window.__host?.phase !== 'loading', undefined, { timeout: 30_000 });
  const state = await page.evaluate(() => ({ phase: window.__host.phase, error: window.__host.error }));
  expect(state.error ?? '').toBe('');
  expect(state.phase).toBe('rendered');
}

describe('the built module.js in Chromium, loaded like Grafana loads it (no Grafana server)', () => {
  it('the host page reaches the real service through the Grafana proxy double', async () => {
    const page = await browser.context.newPage();
    const problems = watch(page);
    await openApp(page);
    const answer = await page.evaluate((url) => {
      if (!window.__host.fetchJson) throw new Error('the host page has no fetchJson');
      return window.__host.fetchJson(url);
    }, `/api/plugin-proxy/${PLUGIN_ID}/api/v1/runbooks`);
    expect(answer.status).toBe(200);
    const ids = (answer.data as { runbooks: Array<{ id: string }> }).runbooks.map((r) => r.id).sort();
    expect(ids).toEqual(['failover-database', 'inspect-latency', 'scale-agent']);
    expect(problems).toEqual([]);
    await page.close();
  });

  it('renders the app at /a/<id>: the catalog lists the real service runbooks, no page error, no console error', async () => {
    const page = await browser.context.newPage();
    const problems = watch(page);
    const moduleRequests: number[] = [];
    page.on('response', (response) => {
      if (new URL(response.url()).pathname === `/public/plugins/${PLUGIN_ID}/module.js`) {
        moduleRequests.push(response.status());
      }
    });
    await openApp(page);
    // The real module.js came from where Grafana serves plugins, once.
    expect(moduleRequests).toEqual([200]);
    // The root page rendered text into the host's React root.
    await page.waitForFunction(
      () => (document.getElementById('reactRoot')?.textContent?.trim().length ?? 0) > 0,
      undefined,
      {
        timeout: 30_000,
      },
    );
    // The catalog lists the runbooks the real service loaded, fetched by the plugin through the proxy.
    for (const title of ['Fail the database over to its standby', 'Inspect API latency', 'Scale an agent']) {
      await page.getByText(title, { exact: true }).waitFor({ timeout: 30_000 });
    }
    expect(host.grafana.forwarded.map((f) => `${f.method} ${new URL(f.target).pathname}`)).toContain(
      'GET /api/v1/runbooks',
    );
    // Let the first requests of the page settle before judging the console.
    await page.waitForLoadState('networkidle');
    await page.screenshot({ path: join(ARTIFACTS, 'catalog.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});

interface RunDetail {
  run: { id: string; runbookId: string; mode: string; status: string; requestedBy: string; input: unknown };
  approvals?: Array<{ status: string; decidedBy?: string | null }>;
}

/** The test runbooks' world; undefined until a plan was applied (the runbooks write it on first change). */
const readWorld = () =>
  existsSync(service.worldFile)
    ? (JSON.parse(readFileSync(service.worldFile, 'utf8')) as {
        agents: Record<string, { replicas: number }>;
        database: { primary: string };
      })
    : undefined;

/** The run id in an "Open run <id>" link of the catalog drawer. */
async function openedRunId(page: Page): Promise<string> {
  const link = page.getByRole('link', { name: /Open run/ });
  await link.waitFor({ timeout: 30_000 });
  const href = (await link.getAttribute('href')) ?? '';
  const match = new RegExp(`/a/${PLUGIN_ID}/runs/([^/?#]+)$`).exec(href);
  if (!match?.[1]) throw new Error(`unexpected run link ${href}`);
  return match[1];
}

async function waitForRunStatus(runId: string, status: string) {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const detail = await service.get<RunDetail>(`runs/${runId}`);
    if (detail.run.status === status) return detail;
    if (Date.now() > deadline) throw new Error(`run ${runId} is ${detail.run.status}, not ${status}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('the incident flow in the built app: catalog, diagnose, plan, run, approve', () => {
  it('an Editor diagnoses, then plans and runs a low-risk runbook after confirming the plan', async () => {
    host.grafana.setUser({ login: 'grace', role: 'Editor', userId: 7 });
    const page = await browser.context.newPage();
    const problems = watch(page);
    await openApp(page);

    // Diagnose: the finding of the real check, in the drawer.
    await page.getByRole('button', { name: 'Diagnose Inspect API latency' }).click();
    const diagnose = page.getByRole('dialog');
    await diagnose.getByRole('button', { name: 'Diagnose', exact: true }).click();
    await diagnose
      .getByText('api-gateway p95 latency is 610 ms (objective 300 ms)')
      .waitFor({ timeout: 30_000 });
    const diagnoseRun = await openedRunId(page);
    expect((await service.get<RunDetail>(`runs/${diagnoseRun}`)).run).toMatchObject({
      mode: 'diagnose',
      status: 'succeeded',
      requestedBy: 'grace',
    });
    await openApp(page);

    // Run: the plan first (a plan-mode run, nothing changed), then execution once confirmed.
    await page.getByRole('button', { name: 'Run Scale an agent' }).click();
    const drawer = page.getByRole('dialog');
    await drawer.getByRole('radio', { name: 'generation-agent' }).click();
    await drawer.getByRole('button', { name: 'Plan and review' }).click();
    await drawer.getByRole('table', { name: 'Changes of scale' }).waitFor({ timeout: 30_000 });
    expect(readWorld()?.agents['generation-agent']?.replicas ?? 0).toBe(0);
    await drawer.getByRole('button', { name: 'Execute…' }).click();
    const confirm = page.getByRole('dialog', { name: 'Execute Scale an agent?' });
    await confirm.getByRole('button', { name: 'Execute', exact: true }).click();
    await page.getByText('Execution queued').waitFor({ timeout: 30_000 });
    const runId = await openedRunId(page);
    const done = await waitForRunStatus(runId, 'succeeded');
    expect(done.run).toMatchObject({ mode: 'execute', requestedBy: 'grace', runbookId: 'scale-agent' });
    expect(readWorld()?.agents['generation-agent']?.replicas).toBe(2);

    // The run's page, reached by its link (a full navigation to /a/<id>/runs/<runId>, as in Grafana).
    await page.getByRole('link', { name: /Open run/ }).click();
    await page.waitForURL(`**/a/${PLUGIN_ID}/runs/${runId}`);
    await page.getByRole('status', { name: 'Status: succeeded' }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'run-detail.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });

  it('a high-risk run waits for approval, and another Grafana admin approves it on the run page', async () => {
    host.grafana.setUser({ login: 'grace', role: 'Editor', userId: 7 });
    const page = await browser.context.newPage();
    const problems = watch(page);
    await openApp(page);
    await page.getByRole('button', { name: 'Run Fail the database over to its standby' }).click();
    const drawer = page.getByRole('dialog');
    await drawer.getByLabel(/^reason/).fill('primary unreachable');
    await drawer.getByRole('button', { name: 'Plan and review' }).click();
    await drawer.getByRole('button', { name: 'Execute…' }).click();
    await page
      .getByRole('dialog', { name: 'Execute Fail the database over to its standby?' })
      .getByRole('button', { name: 'Execute', exact: true })
      .click();
    const runId = await openedRunId(page);
    await waitForRunStatus(runId, 'waiting_approval');
    expect(readWorld()?.database.primary ?? 'db-a').toBe('db-a');

    // Another user, an admin, signs in to "Grafana" and opens the run.
    host.grafana.setUser({ login: 'ada', role: 'Admin', userId: 1 });
    await openApp(page, `/runs/${runId}`);
    await page.getByRole('heading', { name: 'Waiting for approval' }).waitFor({ timeout: 30_000 });
    await page.getByRole('button', { name: 'Approve' }).click();
    const approved = await waitForRunStatus(runId, 'succeeded');
    expect(approved.run.requestedBy).toBe('grace');
    expect(approved.approvals?.map((a) => ({ status: a.status, decidedBy: a.decidedBy }))).toEqual([
      { status: 'approved', decidedBy: 'ada' },
    ]);
    expect(readWorld()?.database.primary).toBe('db-b');
    await page.getByRole('status', { name: 'Status: succeeded' }).waitFor({ timeout: 30_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'approved-run.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});
