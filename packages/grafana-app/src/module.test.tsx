import { AppPlugin } from '@grafana/data';
import { render, screen } from '@testing-library/react';
import React from 'react';
import { MemoryRouter } from 'react-router-dom';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plugin } from './module';
import { type Harness, startHarness } from './test/harness';
import { appPluginMeta } from './test/plugin-meta';

// The real module, its root page routed as Grafana routes it (a router around the app, paths relative
// to /a/<id>/), with the pages talking to the real service through the Grafana double.
let h: Harness;
beforeAll(async () => {
  h = await startHarness({ user: { login: 'vic', role: 'Viewer' } });
});
afterAll(async () => {
  await h?.stop();
});

const meta = appPluginMeta({
  module: 'public/plugins/aiwebtest-runbooks-app/module.js',
  baseUrl: 'public/plugins/aiwebtest-runbooks-app',
  jsonData: { serviceUrl: 'http://runbooks:8080' },
});

function renderAt(path: string) {
  const Root = plugin.root;
  if (!Root) throw new Error('the app has no root page');
  return render(
    // Grafana's router opts in to React Router 7's behaviour; so does this one (and it keeps the test quiet).
    <MemoryRouter initialEntries={[path]} future={{ v7_startTransition: true, v7_relativeSplatPath: true }}>
      <Root meta={meta} basename="/a/aiwebtest-runbooks-app" onNavChanged={() => {}} query={{}} path={path} />
    </MemoryRouter>,
  );
}

describe('module', () => {
  it('exports an AppPlugin with a root page and the configuration page', () => {
    expect(plugin).toBeInstanceOf(AppPlugin);
    expect(plugin.root).toBeTypeOf('function');
    expect(plugin.configPages?.map((p) => ({ id: p.id, title: p.title }))).toEqual([
      { id: 'configuration', title: 'Configuration' },
    ]);
  });

  it('loads the configuration page when it is first shown', async () => {
    const Body = plugin.configPages?.[0]?.body;
    if (!Body) throw new Error('no configuration page');
    render(<Body plugin={{ meta } as never} query={{}} />);
    expect(
      await screen.findByRole('button', { name: /test connection/i }, { timeout: 30_000 }),
    ).toBeInTheDocument();
  });

  it('routes / to the catalog, which lists the service’s runbooks', async () => {
    renderAt('/');
    expect(await screen.findByText('Scale an agent', {}, { timeout: 30_000 })).toBeInTheDocument();
    expect(screen.getByText('Fail the database over to its standby')).toBeInTheDocument();
  });

  it('routes /runs/:runId to that run', async () => {
    const started = await h.service('POST', '/runs', {
      runbookId: 'inspect-latency',
      mode: 'diagnose',
      input: {},
    });
    expect(started.status).toBe(200);
    renderAt(`/runs/${started.body.run.id}`);
    expect(
      await screen.findByRole('heading', { name: 'inspect-latency' }, { timeout: 30_000 }),
    ).toBeInTheDocument();
    expect(screen.queryByText('Scale an agent')).not.toBeInTheDocument();
  });
});
