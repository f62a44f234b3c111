import { createRedactor } from '../core/redact';
import type { Severity } from '../core/runbook';
import { SEVERITY_LEVELS } from './severity';
import { incidentTimeline, type TimelineEntry, type TimelineInput } from './timeline';

/** What {@link incidentReport} needs beyond the run and its audit. */
export interface IncidentReportInput extends TimelineInput {
  /** @default "Incident: <runbook id>" */
  title?: string;
  /** @default the run's escalation severity, else P2 */
  severity?: Severity;
  /** Who and what was affected, in a sentence; the report says "to be filled in" without it. */
  impact?: string;
  /** Follow-ups already known; actions that failed or were reverted are added. */
  followUps?: string[];
  /** Exact secret values to scrub besides what looks like a secret. @default [] */
  secrets?: string[];
  /** The escalator's record of the incident (who was paged when, acknowledgement). */
  escalation?: {
    paged: Record<string, string>;
    acknowledgedAt?: string;
    acknowledgedBy?: string;
    resolvedAt?: string;
  };
}

/**
 * The incident report for the postmortem, in Markdown: summary, severity (with the manual's response time),
 * impact, timeline table, actions taken, approvals, paging, open follow-ups. Everything is redacted: a secret
 * that reached the audit data is not copied into a document that gets shared widely.
 */
export function incidentReport(input: IncidentReportInput): string {
  const redactor = createRedactor(input.secrets ?? []);
  const timeline = incidentTimeline(input);
  const run = input.run as { id: string; runbookId: string; status: string; outcome?: unknown };
  const outcome = (run.outcome ?? null) as {
    kind?: string;
    reason?: string;
    summary?: string;
    severity?: Severity;
  } | null;
  const severity: Severity = input.severity ?? outcome?.severity ?? 'P2';
  const level = SEVERITY_LEVELS[severity];
  const start = timeline[0]?.at;
  const end = [...timeline].reverse().find((e) => e.kind === 'end')?.at;
  const minutes = start && end ? Math.round((end.getTime() - start.getTime()) / 60_000) : undefined;
  const cell = (text: string) => redactor.redactText(text).replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const actions = timeline.filter((e) => e.kind === 'action');
  const approvals = timeline.filter((e) => e.kind === 'approval');
  const followUps = [...(input.followUps ?? []), ...derivedFollowUps(timeline, run.status)];
  const outcomeText = outcome?.reason ?? outcome?.summary ?? '';

  const lines = [
    `# ${cell(input.title ?? `Incident: ${run.runbookId}`)}`,
    '',
    '## Summary',
    '',
    `- Runbook: \`${run.runbookId}\`, run \`${run.id}\``,
    `- Outcome: **${run.status}**${outcomeText ? `: ${cell(outcomeText)}` : ''}`,
    `- Started: ${start?.toISOString() ?? 'unknown'}${end ? `; ended: ${end.toISOString()}` : ''}${minutes !== undefined ? ` (${minutes} min)` : ''}`,
    '',
    '## Severity',
    '',
    `**${severity} - ${level.name}**: ${level.description}. Response time: ${level.responseTimeMs / 60_000} min.`,
    '',
    '## Impact',
    '',
    input.impact ? cell(input.impact) : '_To be filled in: who and what was affected, for how long._',
    '',
    '## Timeline',
    '',
    '| Time (UTC) | Event | Actor | Details |',
    '| --- | --- | --- | --- |',
    ...timeline.map((e) => `| ${e.at.toISOString()} | ${e.kind} | ${cell(e.actor)} | ${cell(e.text)} |`),
    '',
    '## Actions taken',
    '',
    ...(actions.length ? actions.map((e) => `- ${cell(e.text)}`) : ['- No action was applied.']),
    '',
    '## Approvals',
    '',
    ...(approvals.length
      ? approvals.map((e) => `- ${e.at.toISOString()} ${cell(e.text)}`)
      : ['- None needed.']),
    '',
  ];
  if (input.escalation) {
    lines.push('## Paging', '');
    for (const [levelName, at] of Object.entries(input.escalation.paged))
      lines.push(`- ${at}: paged ${cell(levelName)}`);
    if (input.escalation.acknowledgedAt) {
      lines.push(
        `- ${input.escalation.acknowledgedAt}: acknowledged by ${cell(input.escalation.acknowledgedBy ?? 'someone')}`,
      );
    }
    if (input.escalation.resolvedAt) lines.push(`- ${input.escalation.resolvedAt}: resolved`);
    lines.push('');
  }
  lines.push(
    '## Open follow-ups',
    '',
    ...(followUps.length
      ? followUps.map((f) => `- [ ] ${cell(f)}`)
      : ['- [ ] Hold the post-mortem within 48 hours.']),
    '',
  );
  return lines.join('\n');
}

function derivedFollowUps(timeline: TimelineEntry[], status: string): string[] {
  const out: string[] = [];
  for (const e of timeline) {
    if (
      e.source === 'action.reverted' ||
      e.source === 'action.verify-failed' ||
      e.source === 'action.failed'
    ) {
      out.push(`Find out why ${e.step ?? 'an action'} did not hold (${e.source}).`);
    }
  }
  if (status === 'escalated')
    out.push('The runbook escalated: record what the on-call engineer did by hand.');
  if (status === 'failed') out.push('The run failed: fix the runbook or the cause before the next incident.');
  out.push('Hold the post-mortem within 48 hours.');
  return out;
}
