// @vitest-environment jsdom
// @grafana/data touches `window` when it is imported, as it would in Grafana.
import { AppPlugin, type AppPluginMeta, PluginType } from '@grafana/data';
import React from 'react';
import { renderToStaticMarkup } from 'react-dom/server';
import { describe, expect, it } from 'vitest';
import { plugin, type RunbooksAppSettings } from './module';

const meta = (jsonData: RunbooksAppSettings): AppPluginMeta<RunbooksAppSettings> => ({
  id: 'aiwebtest-runbooks-app',
  name: 'AI-Web-Test Runbooks',
  type: PluginType.app,
  module: 'public/plugins/aiwebtest-runbooks-app/module.js',
  baseUrl: 'public/plugins/aiwebtest-runbooks-app',
  info: {
    author: { name: 'AI-Web-Test' },
    description: '',
    links: [],
    logos: { small: '', large: '' },
    screenshots: [],
    updated: '',
    version: '0.1.0',
  },
  jsonData,
});

const renderRoot = (jsonData: RunbooksAppSettings) => {
  const Root = plugin.root;
  if (!Root) throw new Error('the app has no root page');
  return renderToStaticMarkup(
    <Root
      meta={meta(jsonData)}
      basename="/a/aiwebtest-runbooks-app"
      onNavChanged={() => {}}
      query={{}}
      path=""
    />,
  );
};

describe('module', () => {
  it('exports an AppPlugin with a root page', () => {
    expect(plugin).toBeInstanceOf(AppPlugin);
    expect(plugin.root).toBeTypeOf('function');
  });

  it('asks for configuration until a service URL is set', () => {
    expect(renderRoot({})).toContain('No runbook service configured yet');
    expect(renderRoot({ serviceUrl: 'http://runbooks:8080' })).toContain(
      'Runbook service: http://runbooks:8080',
    );
  });
});
