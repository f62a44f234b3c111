import type { CoreV1Event } from '@kubernetes/client-node';
import { z } from 'zod';
import { Duration, formatMillis, toMillis } from '../../core/duration';
import { type Evidence, finding } from '../../core/finding';
import { parseOptions } from '../../core/parse-options';
import { defineCheck, type ReplayableCheck } from '../../core/step';
import type { KubernetesCluster } from '../cluster';
import { formatAge, isoOf, timeOf } from './age';
import { clip, listSome, MAX_ROWS, plural } from './wording';

/**
 * Options of {@link events}: the events of one object (`kind` and `name`), of the pods a label `selector`
 * matches, or of the whole namespace (neither).
 */
export const EventsOptions = z
  .object({
    /** Namespace of the events (for nodes: `default`). */
    namespace: z.string().min(1),
    /** Kind of the object, e.g. `Pod`, `Deployment` (case-insensitive for the usual kinds). @default any: give with `name` */
    kind: z.string().min(1).optional(),
    /** Name of the object. @default any: give with `kind` */
    name: z.string().min(1).optional(),
    /** Label selector of pods whose events are wanted, e.g. `app=requirements-agent`. @default none */
    selector: z.string().min(1).optional(),
    /**
     * Event types shown. Both by default, because the `Normal` events (Scheduled, Pulled, Killing,
     * ScalingReplicaSet) are the timeline that explains the warnings; only `Warning` events affect the status.
     * @default ["Normal", "Warning"]
     */
    types: z
      .array(z.enum(['Normal', 'Warning']))
      .min(1)
      .default(['Normal', 'Warning']),
    /** Only events last seen within this window. @default "1h" (the API server's default event TTL) */
    since: Duration.default('1h'),
  })
  .refine((p) => (p.kind === undefined) === (p.name === undefined), {
    message: 'give `kind` and `name` together',
    path: ['name'],
  })
  .refine((p) => !(p.name !== undefined && p.selector !== undefined), {
    message: 'give either `kind` and `name`, or `selector`, not both',
    path: ['selector'],
  });
export type EventsOptions = z.output<typeof EventsOptions>;
export type EventsOptionsInput = z.input<typeof EventsOptions>;

/** One event, as `kubectl get events` lists it. */
export type EventView = {
  type: string;
  reason: string;
  object: { kind: string; name: string };
  /** Times it happened (repeats are folded into one event). */
  count: number;
  firstSeen: string | null;
  lastSeen: string | null;
  message: string;
  source: string | null;
};

/** What {@link events} found. */
export type EventsData = {
  namespace: string;
  /** What the events were read for: `pod/x`, `pods app=x`, or `namespace`. */
  target: string;
  since: string;
  /** Events in the window, before the row bound. */
  total: number;
  /** `Warning` events in the window. */
  warnings: number;
  /** The newest 100, oldest first. */
  events: EventView[];
};

/**
 * What {@link events} read: the events of the object (or the selector's pods) seen within the window when
 * it looked, oldest first, and that moment. Replaying it with a shorter `since` or fewer `types` judges
 * them again; events older than the recorded window, or of a type the recorded run did not ask the server
 * for (it asks for one type only when `types` has one), were never read.
 */
export type EventsObservation = {
  /** Milliseconds since the epoch when the events were listed. */
  now: number;
  /** False when a `selector` matched no pod (no events were read). */
  podsMatched: boolean;
  events: EventView[];
};

const KIND = 'k8s.events';
const MAX_EVENTS_IN_DATA = 100;
const KINDS = [
  'Pod',
  'Deployment',
  'StatefulSet',
  'ReplicaSet',
  'DaemonSet',
  'Job',
  'CronJob',
  'Node',
  'Service',
  'Endpoints',
  'ConfigMap',
  'Secret',
  'PersistentVolumeClaim',
  'HorizontalPodAutoscaler',
  'Namespace',
];

/**
 * Like `kubectl get events --field-selector involvedObject.kind=…,involvedObject.name=… --sort-by=.lastTimestamp`
 * (or the events of a selector's pods), limited to a recent window.
 *
 * - `warn` when a `Warning` event was seen in the window (BackOff, Unhealthy, FailedScheduling, …).
 * - `ok` otherwise (including no events at all).
 * - `unknown` when a `selector` matches no pod: there is nothing to attribute events to.
 *
 * Replayable: `read` lists the events ({@link EventsObservation}), `judge` applies `since` and `types`.
 */
export function events(
  cluster: KubernetesCluster,
  params: EventsOptionsInput,
): ReplayableCheck<EventsData, EventsObservation> {
  const p = parseOptions(KIND, EventsOptions, params);
  const kind =
    p.kind === undefined
      ? undefined
      : (KINDS.find((k) => k.toLowerCase() === p.kind?.toLowerCase()) ?? p.kind);
  const target =
    kind !== undefined && p.name !== undefined
      ? `${kind.toLowerCase()}/${p.name}`
      : p.selector !== undefined
        ? `pods ${p.selector}`
        : 'namespace';
  const windowText = typeof p.since === 'number' ? formatMillis(p.since) : p.since;
  const sinceMs = toMillis(p.since);
  return defineCheck({
    kind: KIND,
    description: `Events of ${target} in ${p.namespace} in the last ${windowText}`,
    async read(ctx): Promise<EventsObservation> {
      cluster.assertContext();
      const fields: string[] = [];
      if (kind !== undefined && p.name !== undefined) {
        fields.push(`involvedObject.kind=${fieldValue(kind)}`, `involvedObject.name=${fieldValue(p.name)}`);
      }
      if (p.types.length === 1) fields.push(`type=${p.types[0]}`);

      let podNames: Set<string> | undefined;
      if (p.selector !== undefined) {
        const selector = p.selector;
        const pods = await cluster.call(
          `list pods ${selector} in ${p.namespace}`,
          (options) =>
            cluster.core.listNamespacedPod({ namespace: p.namespace, labelSelector: selector }, options),
          { signal: ctx.signal },
        );
        podNames = new Set(pods.items.map((pod) => pod.metadata?.name ?? ''));
        fields.push('involvedObject.kind=Pod');
      }
      if (podNames?.size === 0) return { now: Date.now(), podsMatched: false, events: [] };

      const list = await cluster.call(
        `list events of ${target} in ${p.namespace}`,
        (options) =>
          cluster.core.listNamespacedEvent(
            { namespace: p.namespace, ...(fields.length ? { fieldSelector: fields.join(',') } : {}) },
            options,
          ),
        { signal: ctx.signal },
      );
      const now = Date.now();
      const from = now - sinceMs;
      // The field selector narrows what the server sends; the same filter here keeps the result exact
      // whatever the server supports.
      const inWindow = list.items
        .filter((e) => kind === undefined || e.involvedObject?.kind === kind)
        .filter((e) => p.name === undefined || e.involvedObject?.name === p.name)
        .filter(
          (e) =>
            podNames === undefined ||
            (e.involvedObject?.kind === 'Pod' && podNames.has(e.involvedObject.name ?? '')),
        )
        .filter((e) => (p.types as string[]).includes(e.type ?? 'Normal'))
        .map((e) => ({ event: e, at: lastSeen(e) }))
        .filter((e) => e.at === undefined || e.at >= from)
        .sort((a, b) => (a.at ?? 0) - (b.at ?? 0));
      return { now, podsMatched: true, events: inWindow.map(({ event }) => viewEvent(event)) };
    },
    judge(seen) {
      const base = { namespace: p.namespace, target, since: windowText };
      if (!seen.podsMatched) {
        return finding('unknown', `No pods match ${p.selector} in ${p.namespace}: no events to attribute`, {
          ...base,
          total: 0,
          warnings: 0,
          events: [],
        });
      }
      const from = seen.now - sinceMs;
      // Already within the recorded window and of the recorded types: narrowed again for a replay.
      const views = seen.events
        .filter((v) => (p.types as string[]).includes(v.type))
        .filter((v) => v.lastSeen === null || Date.parse(v.lastSeen) >= from);
      const warnings = views.filter((v) => v.type === 'Warning');
      const data: EventsData = {
        ...base,
        total: views.length,
        warnings: warnings.length,
        events: views.slice(-MAX_EVENTS_IN_DATA),
      };
      const evidence = evidenceOf(views, seen.now);
      const where = `${target === 'namespace' ? '' : `for ${target} `}in ${p.namespace} in the last ${windowText}`;

      if (warnings.length) {
        const byReason = new Map<string, { count: number; last: EventView }>();
        for (const w of warnings) {
          const group = byReason.get(w.reason);
          byReason.set(w.reason, { count: (group?.count ?? 0) + w.count, last: w });
        }
        const groups = [...byReason.entries()]
          .sort((a, b) => b[1].count - a[1].count)
          .map(
            ([reason, g]) =>
              `${reason} ×${g.count} (${g.last.object.kind.toLowerCase()}/${g.last.object.name}: ${clip(g.last.message, 80)})`,
          );
        return finding(
          'warn',
          `${plural(warnings.length, 'Warning event')} ${where}: ${listSome(groups, 2)}`,
          data,
          evidence,
        );
      }
      const normal = views.length ? ` (${plural(views.length, 'Normal event')})` : '';
      const head = p.types.includes('Warning') ? 'No Warning events' : `${plural(views.length, 'event')}`;
      return finding('ok', `${head} ${where}${p.types.includes('Warning') ? normal : ''}`, data, evidence);
    },
  });
}

/** When an event was last seen: `lastTimestamp`, else the newer `eventTime`/series fields, else its creation. */
function lastSeen(e: CoreV1Event): number | undefined {
  return (
    timeOf(e.lastTimestamp) ??
    timeOf(e.series?.lastObservedTime) ??
    timeOf(e.eventTime) ??
    timeOf(e.firstTimestamp) ??
    timeOf(e.metadata?.creationTimestamp)
  );
}

function viewEvent(e: CoreV1Event): EventView {
  const last = lastSeen(e);
  return {
    type: e.type ?? 'Normal',
    reason: e.reason ?? '',
    object: { kind: e.involvedObject?.kind ?? '', name: e.involvedObject?.name ?? '' },
    count: e.count ?? e.series?.count ?? 1,
    firstSeen: isoOf(e.firstTimestamp ?? e.eventTime),
    lastSeen: last === undefined ? null : new Date(last).toISOString(),
    message: clip(e.message ?? '', 500),
    source: e.source?.component ?? e.reportingComponent ?? null,
  };
}

function evidenceOf(views: EventView[], now: number): Evidence[] {
  if (views.length === 0) return [];
  const shown = views.slice(-MAX_ROWS);
  const table: Evidence = {
    kind: 'table',
    title: views.length > shown.length ? `Events (newest ${shown.length} of ${views.length})` : 'Events',
    columns: ['LAST SEEN', 'TYPE', 'REASON', 'OBJECT', 'COUNT', 'MESSAGE'],
    rows: shown.map((v) => [
      v.lastSeen ? formatAge(v.lastSeen, now) : '<unknown>',
      v.type,
      v.reason,
      `${v.object.kind.toLowerCase()}/${v.object.name}`,
      v.count,
      clip(v.message, 200),
    ]),
  };
  return [table];
}

/** Escapes a field selector value as the API server parses it (`\\`, `,` and `=` are special). */
function fieldValue(value: string): string {
  return value.replace(/[\\,=]/g, (c) => `\\${c}`);
}
