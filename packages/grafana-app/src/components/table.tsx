/**
 * The app's plain HTML tables (plans, runs, audit, evidence): one header markup and one look, so every table
 * reads the same and keeps `scope="col"` headers for screen readers.
 */
import type { CSSObject } from '@emotion/css/create-instance';
import type { GrafanaTheme2 } from '@grafana/data';
import React from 'react';

/** A table's header row: one column header per name, in order. */
export function TableHead({ columns }: { columns: readonly string[] }) {
  return (
    <thead>
      <tr>
        {columns.map((c) => (
          <th key={c} scope="col">
            {c}
          </th>
        ))}
      </tr>
    </thead>
  );
}

/**
 * The style of a table (pass it to `css`): left-aligned cells with a rule under each row and muted headers.
 * `cell` adds to or overrides the cells' style (padding, vertical alignment).
 */
export function tableStyle(theme: GrafanaTheme2, cell: CSSObject = {}): CSSObject {
  return {
    borderCollapse: 'collapse',
    'th, td': {
      textAlign: 'left',
      padding: theme.spacing(0.5, 1),
      borderBottom: `1px solid ${theme.colors.border.weak}`,
      ...cell,
    },
    th: { color: theme.colors.text.secondary, fontWeight: theme.typography.fontWeightMedium },
  };
}
