import { css } from '@emotion/css';
import type { GrafanaTheme2 } from '@grafana/data';
import { Badge, Stack, Text, TextLink, useStyles2 } from '@grafana/ui';
import React, { useId } from 'react';
import type { RunDetailView } from '../api/types';
import { type EvidenceItem, formatJson, sparkline, summarizeSeries, toEvidence } from './evidence-model';
import { FINDING_COLOR } from './run-format';
import { TableHead, tableStyle } from './table';

type FindingView = RunDetailView['findings'][number];

/** A check's finding: its judgement, summary and every piece of evidence it collected. */
export function FindingCard({ finding }: { finding: FindingView }) {
  const styles = useStyles2(getStyles);
  return (
    <section className={styles.finding} aria-label={`Finding of step ${finding.step}`}>
      <Stack direction="row" gap={1} alignItems="center" wrap="wrap">
        <Badge text={finding.status} color={FINDING_COLOR[finding.status]} />
        <Text weight="medium">{finding.step}</Text>
        <Text>{finding.summary}</Text>
      </Stack>
      {finding.evidence.length > 0 && (
        <div className={styles.evidenceList}>
          {finding.evidence.map((e, i) => (
            // Evidence has no id; its position in the finding is stable.
            // biome-ignore lint/suspicious/noArrayIndexKey: evidence entries never reorder
            <EvidenceView key={i} evidence={toEvidence(e)} />
          ))}
        </div>
      )}
    </section>
  );
}

/**
 * One piece of evidence: a table, log lines (monospace, scrollable), a series as a small SVG graph with
 * axes and a text summary, a text, a link, or formatted JSON for anything else.
 */
export function EvidenceView({ evidence }: { evidence: EvidenceItem }) {
  const styles = useStyles2(getStyles);
  const titleId = useId();
  return (
    <figure className={styles.figure} aria-labelledby={titleId}>
      <figcaption id={titleId} className={styles.caption}>
        {evidence.title}
      </figcaption>
      <EvidenceBody evidence={evidence} />
    </figure>
  );
}

function EvidenceBody({ evidence }: { evidence: EvidenceItem }) {
  const styles = useStyles2(getStyles);
  switch (evidence.kind) {
    case 'table':
      return (
        <div className={styles.scrollX}>
          <table className={styles.table}>
            <TableHead columns={evidence.columns} />
            <tbody>
              {evidence.rows.map((row, r) => (
                // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity of their own
                <tr key={r}>
                  {row.map((cell, c) => (
                    // biome-ignore lint/suspicious/noArrayIndexKey: cells are positional
                    <td key={c} className={typeof cell === 'number' ? styles.number : undefined}>
                      {cell === null ? '—' : String(cell)}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      );
    case 'log':
      return (
        <ScrollRegion label={`${evidence.title}: ${evidence.lines.length} lines`}>
          <pre className={styles.log}>{evidence.lines.join('\n')}</pre>
        </ScrollRegion>
      );
    case 'series':
      return <SeriesGraph title={evidence.title} points={evidence.points} unit={evidence.unit} />;
    case 'text':
      return <p className={styles.text}>{evidence.text}</p>;
    case 'link':
      return (
        <TextLink href={evidence.url} external>
          {evidence.url}
        </TextLink>
      );
    case 'json':
      return (
        <ScrollRegion label={`${evidence.title} (JSON)`}>
          <pre className={styles.json}>{formatJson(evidence.value)}</pre>
        </ScrollRegion>
      );
  }
}

/** A scrollable box that keyboard users can focus to scroll, named for screen readers. */
function ScrollRegion({ label, children }: { label: string; children: React.ReactNode }) {
  const styles = useStyles2(getStyles);
  return (
    // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable region must be reachable by keyboard (WCAG 2.1.1)
    <section aria-label={label} tabIndex={0} className={styles.scrollBox}>
      {children}
    </section>
  );
}

const GRAPH_WIDTH = 480;
const GRAPH_HEIGHT = 140;

/**
 * A time series as a small SVG line graph with a labelled y axis (min, max) and x axis (first and last
 * time). Grafana's TimeSeries panel needs a whole DataFrame/PanelRenderer setup and uPlot for what is
 * a handful of points; this draws the same facts in a few elements and says them in words for screen readers.
 */
export function SeriesGraph({
  title,
  points,
  unit,
}: {
  title: string;
  points: Array<[number, number]>;
  unit?: string;
}) {
  const styles = useStyles2(getStyles);
  const summary = summarizeSeries(points, unit);
  if (!summary) return <Text color="secondary">No data points.</Text>;
  const g = sparkline(points, GRAPH_WIDTH, GRAPH_HEIGHT, unit);
  return (
    <div>
      <svg
        className={styles.graph}
        viewBox={`0 0 ${GRAPH_WIDTH} ${GRAPH_HEIGHT}`}
        role="img"
        aria-label={`${title}: ${summary.text}`}
      >
        <line className={styles.axis} x1={g.plot.left} y1={g.plot.top} x2={g.plot.left} y2={g.plot.bottom} />
        <line
          className={styles.axis}
          x1={g.plot.left}
          y1={g.plot.bottom}
          x2={g.plot.right}
          y2={g.plot.bottom}
        />
        {g.yTicks.map((t) => (
          <text
            key={`y${t.label}`}
            className={styles.tick}
            x={g.plot.left - 4}
            y={t.y}
            textAnchor="end"
            dominantBaseline="middle"
          >
            {t.label}
          </text>
        ))}
        {g.xTicks.map((t, i) => (
          <text
            key={`x${t.label}`}
            className={styles.tick}
            x={t.x}
            y={g.plot.bottom + 14}
            textAnchor={g.xTicks.length === 1 ? 'middle' : i === 0 ? 'start' : 'end'}
          >
            {t.label}
          </text>
        ))}
        <polyline className={styles.line} points={g.points} />
      </svg>
      <div className={styles.summary} aria-hidden="true">
        {summary.text}
      </div>
    </div>
  );
}

const getStyles = (theme: GrafanaTheme2) => ({
  finding: css({
    padding: theme.spacing(1.5),
    border: `1px solid ${theme.colors.border.weak}`,
    borderRadius: theme.shape.radius.default,
    background: theme.colors.background.primary,
  }),
  evidenceList: css({
    display: 'flex',
    flexDirection: 'column',
    gap: theme.spacing(2),
    marginTop: theme.spacing(1.5),
  }),
  figure: css({ margin: 0 }),
  caption: css({
    fontWeight: theme.typography.fontWeightMedium,
    color: theme.colors.text.secondary,
    marginBottom: theme.spacing(0.5),
  }),
  scrollX: css({ overflowX: 'auto' }),
  table: css({ ...tableStyle(theme), minWidth: '50%' }),
  number: css({ textAlign: 'right', fontVariantNumeric: 'tabular-nums' }),
  scrollBox: css({
    maxHeight: 240,
    overflow: 'auto',
    '&:focus-visible': { outline: `2px solid ${theme.colors.primary.main}` },
  }),
  log: css({
    fontFamily: theme.typography.fontFamilyMonospace,
    fontSize: theme.typography.bodySmall.fontSize,
    margin: 0,
    padding: theme.spacing(1),
    background: theme.colors.background.canvas,
    border: `1px solid ${theme.colors.border.weak}`,
    whiteSpace: 'pre',
  }),
  json: css({
    fontFamily: theme.typography.fontFamilyMonospace,
    fontSize: theme.typography.bodySmall.fontSize,
    margin: 0,
    padding: theme.spacing(1),
    background: theme.colors.background.canvas,
  }),
  text: css({ margin: 0, whiteSpace: 'pre-wrap' }),
  graph: css({ width: '100%', maxWidth: GRAPH_WIDTH, height: 'auto', display: 'block' }),
  axis: css({ stroke: theme.colors.border.strong, strokeWidth: 1 }),
  tick: css({ fill: theme.colors.text.secondary, fontSize: 11 }),
  line: css({ fill: 'none', stroke: theme.colors.primary.main, strokeWidth: 2 }),
  summary: css({ color: theme.colors.text.secondary, fontSize: theme.typography.bodySmall.fontSize }),
});
