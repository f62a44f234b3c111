import type { Severity } from '../core/runbook';

/** What a severity means and how fast someone must respond, from the operations manual's on-call table. */
export interface SeverityLevel {
  severity: Severity;
  name: string;
  description: string;
  /** How soon the on-call engineer must respond, in ms. */
  responseTimeMs: number;
  examples: readonly string[];
}

const MINUTE = 60_000;

/** The manual's alert severity levels P0–P3. */
export const SEVERITY_LEVELS: Readonly<Record<Severity, SeverityLevel>> = {
  P0: {
    severity: 'P0',
    name: 'Critical',
    description: 'Complete service outage',
    responseTimeMs: 5 * MINUTE,
    examples: ['All services down', 'Database corrupted'],
  },
  P1: {
    severity: 'P1',
    name: 'High',
    description: 'Major functionality broken',
    responseTimeMs: 15 * MINUTE,
    examples: ['Agent failures', 'API errors >10%'],
  },
  P2: {
    severity: 'P2',
    name: 'Medium',
    description: 'Degraded performance',
    responseTimeMs: 30 * MINUTE,
    examples: ['High latency', 'Model accuracy drop'],
  },
  P3: {
    severity: 'P3',
    name: 'Low',
    description: 'Minor issues',
    responseTimeMs: 60 * MINUTE,
    examples: ['Slow queries', 'UI glitches'],
  },
};

/** PagerDuty Events v2 `payload.severity` for a runbook severity. */
export type PagerDutySeverity = 'critical' | 'error' | 'warning' | 'info';

const PAGERDUTY_SEVERITY: Readonly<Record<Severity, PagerDutySeverity>> = {
  P0: 'critical',
  P1: 'error',
  P2: 'warning',
  P3: 'info',
};

/** P0 → critical, P1 → error, P2 → warning, P3 → info. */
export function pagerDutySeverity(severity: Severity): PagerDutySeverity {
  return PAGERDUTY_SEVERITY[severity];
}

/** Statuspage `impact_override` for a runbook severity. */
export type StatusPageImpact = 'critical' | 'major' | 'minor' | 'none';

const IMPACT: Readonly<Record<Severity, StatusPageImpact>> = {
  P0: 'critical',
  P1: 'major',
  P2: 'minor',
  P3: 'none',
};

/** P0 → critical, P1 → major, P2 → minor, P3 → none. */
export function statusPageImpact(severity: Severity): StatusPageImpact {
  return IMPACT[severity];
}
