/**
 * The built app's catalog in Chromium, for how it looks and how it is used without a mouse: rendered in
 * Grafana's light and dark themes (the theme Grafana's boot data names, `?theme=` on the host page), and one
 * whole flow driven by the keyboard only, with a visible focus on every control it reaches.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ARTIFACTS,
  type BrowserFixture,
  computedColor,
  openHostPage,
  PLUGIN_ID,
  startFixture,
  watch,
} from './fixture.ts';

const GRACE = { login: 'grace', role: 'Editor', userId: 7 } as const;
const WAIT = { timeout: 20_000 };

let f: BrowserFixture;
/** Start-up (service, page server, Chromium) may take a minute or more on a busy machine. */
const START_UP_MS = 150_000;

beforeAll(async () => {
  f = await startFixture(GRACE);
}, START_UP_MS);
afterAll(async () => {
  await f?.close();
});

async function openCatalog(page: Page, query = '') {
  await openHostPage(page, f.host.url, `/a/${PLUGIN_ID}${query}`, 'rendered');
  await page.getByText('Inspect API latency', { exact: true }).waitFor(WAIT);
}

describe('the catalog in Grafana light and dark themes', () => {
  it('renders in both themes with the theme’s own page background and text colours', async () => {
    // Both pages at once: each is a fresh page load with its own boot data.
    const seen = Object.fromEntries(
      await Promise.all(
        (['light', 'dark'] as const).map(async (mode) => {
          const page = await f.browser.context.newPage();
          const problems = watch(page);
          await openCatalog(page, `?theme=${mode}`);
          const colors = await page.evaluate((m) => window.__host.themeColors?.(m), mode);
          if (!colors) throw new Error('the host page gives no theme colours');
          const body = await page.evaluate(() => {
            const style = getComputedStyle(document.body);
            return { background: style.backgroundColor, text: style.color };
          });
          expect(body).toEqual({
            background: await computedColor(page, colors.canvas),
            text: await computedColor(page, colors.text),
          });
          // The plugin's own parts follow the theme too: a runbook's title is in the theme's text colour.
          const title = await page
            .getByText('Inspect API latency', { exact: true })
            .evaluate((element) => getComputedStyle(element).color);
          expect(title).toBe(await computedColor(page, colors.text));
          await page.screenshot({ path: join(ARTIFACTS, `catalog-${mode}.png`), fullPage: true });
          expect(problems).toEqual([]);
          await page.close();
          return [mode, body] as const;
        }),
      ),
    );
    expect(seen.light?.background).not.toBe(seen.dark?.background);
    expect(seen.light?.text).not.toBe(seen.dark?.text);
  });
});

/** The focused element: its accessible name (aria-label, else its text), tag, and whether it shows a focus ring. */
function focused(page: Page, ring: string) {
  return page.evaluate((ringColor) => {
    const element = document.activeElement as HTMLElement | null;
    if (!element || element === document.body) return { name: '(body)', tag: 'BODY', visible: false };
    const style = getComputedStyle(element);
    // Grafana's focus style: a transparent outline and a box-shadow ring in the primary colour; ours: an outline.
    const outline =
      style.outlineStyle !== 'none' &&
      style.outlineColor !== 'rgba(0, 0, 0, 0)' &&
      style.outlineWidth !== '0px';
    return {
      name: (element.getAttribute('aria-label') ?? element.textContent ?? '').trim(),
      tag: element.tagName,
      visible: outline || style.boxShadow.includes(ringColor),
    };
  }, ring);
}

describe('the catalog by keyboard only', () => {
  it('Tab/Shift+Tab to a runbook, Enter to open, Space to diagnose, the result read, Escape back', async () => {
    const page = await f.browser.context.newPage();
    const problems = watch(page);
    await openCatalog(page);
    const colors = await page.evaluate(() => window.__host.themeColors?.('dark'));
    if (!colors) throw new Error('the host page gives no theme colours');
    const ring = await computedColor(page, colors.primary);

    /** Presses `key` and expects the focus on `name`, shown (polled: Grafana's focus ring fades in). */
    const press = async (key: string, name: string | RegExp) => {
      await page.keyboard.press(key);
      await expect.poll(async () => (await focused(page, ring)).name, { timeout: 5_000 }).toMatch(name);
      await expect
        .poll(async () => (await focused(page, ring)).visible, {
          timeout: 5_000,
          message: `focus ring on ${name}`,
        })
        .toBe(true);
    };

    // From the top of the page, Tab through the header to the first runbook's first button.
    let steps = 0;
    while ((await focused(page, ring)).name !== 'Diagnose Fail the database over to its standby') {
      if (++steps > 10) throw new Error('Tab never reached the first runbook');
      await page.keyboard.press('Tab');
    }
    expect((await focused(page, ring)).tag).toBe('BUTTON');
    await expect.poll(async () => (await focused(page, ring)).visible, { timeout: 5_000 }).toBe(true);
    await press('Tab', 'Plan Fail the database over to its standby');
    await press('Tab', 'Run Fail the database over to its standby');
    await press('Tab', 'Diagnose Inspect API latency');
    await press('Tab', 'Plan Inspect API latency');
    await press('Shift+Tab', 'Diagnose Inspect API latency');

    // Enter opens the drawer with the focus inside it.
    await page.keyboard.press('Enter');
    const drawer = page.getByRole('dialog');
    await drawer.waitFor(WAIT);
    await expect
      .poll(() => drawer.evaluate((d) => d.contains(document.activeElement)), { timeout: 5_000 })
      .toBe(true);
    // Through the form (the service field, prefilled with its default) to the Diagnose button.
    steps = 0;
    while ((await focused(page, ring)).name !== 'Diagnose') {
      if (++steps > 6) throw new Error('Tab never reached the drawer’s Diagnose button');
      await page.keyboard.press('Tab');
    }
    expect(await drawer.getByRole('textbox').inputValue()).toBe('api-gateway');
    await expect.poll(async () => (await focused(page, ring)).visible, { timeout: 5_000 }).toBe(true);
    const before = (await f.runs()).length;
    await page.keyboard.press('Space');

    // The result: the finding is shown, and the focus is on the result's heading, in the drawer.
    await drawer.getByText('api-gateway p95 latency is 610 ms (objective 300 ms)').waitFor(WAIT);
    await expect.poll(async () => (await focused(page, ring)).name, { timeout: 5_000 }).toBe('Diagnosis');
    // Keyboard focus with a visible ring (a box-shadow: Grafana's global `[tabindex='-1']:focus` rule removes
    // outlines on such headings).
    expect(await page.evaluate(() => document.activeElement?.matches(':focus-visible'))).toBe(true);
    await expect.poll(async () => (await focused(page, ring)).visible, { timeout: 5_000 }).toBe(true);
    const runs = await f.runs();
    expect(runs).toHaveLength(before + 1);
    expect(runs[0]).toMatchObject({ runbookId: 'inspect-latency', mode: 'diagnose', status: 'succeeded' });
    // On to the run's link, readable by keyboard too.
    await press('Tab', /^Open run run_/);

    // Escape closes the drawer and gives the focus back to the button that opened it.
    await page.keyboard.press('Escape');
    await drawer.waitFor({ state: 'detached', timeout: 5_000 });
    await expect
      .poll(async () => (await focused(page, ring)).name, { timeout: 5_000 })
      .toBe('Diagnose Inspect API latency');
    await expect.poll(async () => (await focused(page, ring)).visible, { timeout: 5_000 }).toBe(true);
    await page.screenshot({ path: join(ARTIFACTS, 'catalog-keyboard.png'), fullPage: true });
    expect(problems).toEqual([]);
    await page.close();
  });
});
