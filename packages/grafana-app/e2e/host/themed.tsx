/**
 * The theme and the page-wide styles around everything the host renders, as Grafana's own root does.
 * The theme is @grafana/runtime's `config.theme2`, which config builds from `grafanaBootData.user.theme`
 * (the server sets it from the page's `?theme=`).
 */
import { ThemeContext } from '@grafana/data';
import { config } from '@grafana/runtime';
import { GlobalStyles } from '@grafana/ui';
import type * as React from 'react';

export function Themed({ children }: { children: React.ReactNode }) {
  return (
    <ThemeContext.Provider value={config.theme2}>
      {/* Grafana's page-wide styles (body background, text colour). */}
      <GlobalStyles />
      {children}
    </ThemeContext.Provider>
  );
}
