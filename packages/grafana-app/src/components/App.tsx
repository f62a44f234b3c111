import type { AppRootProps } from '@grafana/data';
import React from 'react';
import { Route, Routes } from 'react-router-dom';
import { AuditPage } from '../pages/AuditPage';
import { CatalogPage } from '../pages/CatalogPage';
import { RunDetailPage } from '../pages/RunDetailPage';
import { RunsPage } from '../pages/RunsPage';
import type { RunbooksAppSettings } from '../settings';

/**
 * The app's pages under `/a/aiwebtest-runbooks-app/`: the catalog, runs history, a run's detail and the
 * audit log. Grafana renders this inside its own router, so the paths here are relative.
 */
export function App(_props: AppRootProps<RunbooksAppSettings>) {
  return (
    <Routes>
      <Route path="runs/:runId" element={<RunDetailPage />} />
      <Route path="runs" element={<RunsPage />} />
      <Route path="audit" element={<AuditPage />} />
      <Route path="*" element={<CatalogPage />} />
    </Routes>
  );
}
