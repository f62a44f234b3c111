import { render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import React from 'react';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plugin } from '../module';
import type { RunbooksAppSettings } from '../settings';
import { type Harness, startHarness } from '../test/harness';
import { appPluginMeta } from '../test/plugin-meta';
import { AppConfig, serviceUrlProblem } from './AppConfig';

// The config page against the real service through the Grafana double: Save goes to the double's
// plugin settings API (which stores jsonData and secureJsonData as Grafana does), and the connection
// test goes through the proxy routes with whatever was saved.
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ user: { login: 'gina', role: 'Admin' }, configured: false });
});
afterAll(async () => {
  await h?.stop();
});

/** The page as Grafana renders it, for the settings Grafana holds now. */
function renderPage() {
  const stored = h.proxy.settings();
  plugin.meta = appPluginMeta({
    enabled: stored.enabled,
    pinned: stored.pinned,
    jsonData: stored.jsonData as RunbooksAppSettings,
    secureJsonFields: Object.fromEntries(
      Object.entries(stored.secureJsonData)
        .filter(([, v]) => v !== '')
        .map(([k]) => [k, true]),
    ),
  });
  return render(<AppConfig plugin={plugin} query={{}} />);
}

const FIRST_RENDER = { timeout: 30_000 };

describe('serviceUrlProblem', () => {
  it.each([
    ['', /Enter the runbook service's URL/],
    ['runbooks:8080', /must start with http/],
    ['not a url', /Not a URL/],
    ['ftp://runbooks', /must start with http/],
    ['http://user:pw@runbooks:8080', /credentials/],
    ['http://runbooks:8080/?token=x', /base URL only/],
  ])('refuses %j', (value, problem) => {
    expect(serviceUrlProblem(value)).toMatch(problem);
  });
  it.each(['http://runbooks:8080', 'https://runbooks.example/base'])('takes %j', (value) => {
    expect(serviceUrlProblem(value)).toBeUndefined();
  });
});

describe('AppConfig', () => {
  it('refuses a bad URL inline and saves nothing', async () => {
    const user = userEvent.setup();
    renderPage();
    const url = await screen.findByLabelText(/Service URL/, {}, FIRST_RENDER);
    await user.type(url, 'runbooks:8080');
    await user.click(screen.getByRole('button', { name: /Save settings/ }));
    expect(await screen.findByText(/must start with http:\/\/ or https:\/\//)).toBeInTheDocument();
    expect(screen.getByText('Enter the token the service granted to Grafana.')).toBeInTheDocument();
    expect(h.proxy.settings().jsonData).toEqual({});
  });

  it("saves the settings; a wrong token shows the service's 401, the right one connects", async () => {
    const user = userEvent.setup();
    const view = renderPage();
    await user.type(await screen.findByLabelText(/Service URL/, {}, FIRST_RENDER), h.serviceUrl);
    await user.type(screen.getByLabelText(/Service token/), 'wrong-token');
    await user.click(screen.getByRole('button', { name: /Save settings/ }));
    expect(await screen.findByText('Settings saved.')).toBeInTheDocument();
    expect(h.proxy.settings()).toMatchObject({
      enabled: true,
      pinned: true,
      jsonData: { serviceUrl: h.serviceUrl },
      secureJsonData: { serviceToken: 'wrong-token' },
    });
    // Saved secrets are shown as configured, never echoed.
    expect(screen.getByDisplayValue('configured')).toBeInTheDocument();
    expect(view.container.innerHTML).not.toContain('wrong-token');

    await user.click(screen.getByRole('button', { name: /Test connection/ }));
    expect(await screen.findByText('Connection failed', {}, { timeout: 10_000 })).toBeInTheDocument();
    expect(screen.getByText('UNTRUSTED_GRAFANA_CONTEXT')).toBeInTheDocument();
    expect(screen.getByText(/X-Grafana-Context/)).toBeInTheDocument();
    view.unmount();

    // Grafana renders the page again from the stored settings: the token is configured; reset, replace.
    renderPage();
    expect(await screen.findByDisplayValue('configured', {}, FIRST_RENDER)).toBeInTheDocument();
    expect(screen.getByDisplayValue(h.serviceUrl)).toBeInTheDocument();
    await user.click(screen.getByRole('button', { name: 'Reset' }));
    await user.type(screen.getByLabelText(/Service token/), h.appToken);
    await user.click(screen.getByRole('button', { name: /Save settings/ }));
    expect(await screen.findByText('Settings saved.')).toBeInTheDocument();
    expect(h.proxy.settings().secureJsonData).toEqual({ serviceToken: h.appToken });

    await user.click(screen.getByRole('button', { name: /Test connection/ }));
    expect(await screen.findByText('Connected: 3 runbooks', {}, { timeout: 10_000 })).toBeInTheDocument();
    expect(document.body.innerHTML).not.toContain(h.appToken);
  });

  it('saves a new URL alone: the stored token stays, the pin is kept, and the connection works', async () => {
    const token = h.proxy.settings().secureJsonData.serviceToken;
    expect(token).toBe(h.appToken);
    // The service moved (here: an address where nothing listens is stored), and the app is not pinned.
    h.proxy.setSettings({ pinned: false, jsonData: { serviceUrl: 'http://127.0.0.1:9' } });
    const user = userEvent.setup();
    const view = renderPage();
    expect(await screen.findByDisplayValue('configured', {}, FIRST_RENDER)).toBeInTheDocument();
    const url = screen.getByLabelText(/Service URL/);
    await user.clear(url);
    await user.type(url, h.serviceUrl);
    await user.click(screen.getByRole('button', { name: /Save settings/ }));
    expect(await screen.findByText('Settings saved.')).toBeInTheDocument();
    expect(h.proxy.settings()).toEqual({
      enabled: true,
      pinned: false,
      jsonData: { serviceUrl: h.serviceUrl },
      secureJsonData: { serviceToken: h.appToken },
    });
    await user.click(screen.getByRole('button', { name: /Test connection/ }));
    expect(await screen.findByText('Connected: 3 runbooks', {}, { timeout: 10_000 })).toBeInTheDocument();
    view.unmount();
  });

  it("shows Grafana's refusal when a non-admin saves, and keeps the stored settings", async () => {
    const before = h.proxy.settings();
    h.setUser({ login: 'eddie', role: 'Editor' });
    try {
      const user = userEvent.setup();
      renderPage();
      const url = await screen.findByLabelText(/Service URL/, {}, FIRST_RENDER);
      await user.clear(url);
      await user.type(url, 'http://elsewhere:8080');
      await user.click(screen.getByRole('button', { name: /Save settings/ }));
      expect(await screen.findByText('The settings were not saved')).toBeInTheDocument();
      expect(screen.getByText(/Permissions needed: plugins:write/)).toBeInTheDocument();
      expect(h.proxy.settings()).toEqual(before);
    } finally {
      h.setUser({ login: 'gina', role: 'Admin' });
    }
  });
});
