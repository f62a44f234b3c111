import { RESTARTED_AT_ANNOTATION, rolloutStatus } from '@aiwebtest/runbooks/kubernetes';
import {
  DEPLOYMENTS,
  type KubeObject,
  type ObjectStore,
  STATEFULSETS,
  type WatchEvent,
} from '@aiwebtest/runbooks/testing';
import type { V1Deployment, V1StatefulSet } from '@kubernetes/client-node';

/**
 * Turns changes to the platform's workloads in the simulated cluster into lab events, so that
 * `kubectl set env`, `kubectl rollout restart` and `kubectl scale` on the simulator can have real effects
 * (reconfigure the backend, restart pgbouncer, resize the Grid).
 */

export type WorkloadKind = 'Deployment' | 'StatefulSet';

/** A container's literal env values (`valueFrom` entries are not literals and are left out). */
export type EnvMap = Record<string, string>;

export type WorkloadEvent =
  | {
      /** A container's env in the pod template changed (`kubectl set env`); sent at the spec change. */
      type: 'envChanged';
      kind: WorkloadKind;
      name: string;
      container: string;
      before: EnvMap;
      after: EnvMap;
    }
  | {
      /** A `kubectl rollout restart` finished: the rollout of the new template is done and its pods are ready. */
      type: 'restarted';
      kind: WorkloadKind;
      name: string;
      restartedAt: string;
    }
  | {
      /** `spec.replicas` or `status.readyReplicas` changed. */
      type: 'replicasChanged';
      kind: WorkloadKind;
      name: string;
      desired: number;
      ready: number;
      before: { desired: number; ready: number };
    };

export type WorkloadListener = (event: WorkloadEvent) => void | Promise<void>;

export interface WorkloadWatch {
  close(): void;
  [Symbol.dispose](): void;
}

export interface WatchWorkloadsOptions {
  /** Called when the listener throws or rejects. @default the error is dropped */
  onError?: (error: unknown, event: WorkloadEvent) => void;
}

interface Seen {
  env: Map<string, EnvMap>;
  restartedAt: string | undefined;
  desired: number;
  ready: number;
  /** A restart waiting for its rollout: the annotation value and the generation that carries it. */
  pendingRestart?: { restartedAt: string; generation: number };
}

interface WorkloadView {
  metadata: KubeObject['metadata'];
  spec?: {
    replicas?: number;
    template?: {
      metadata?: { annotations?: Record<string, string> };
      spec?: {
        containers?: { name: string; env?: { name: string; value?: string; valueFrom?: unknown }[] }[];
      };
    };
  };
  status?: { readyReplicas?: number; observedGeneration?: number };
}

function envOf(w: WorkloadView): Map<string, EnvMap> {
  const out = new Map<string, EnvMap>();
  for (const c of w.spec?.template?.spec?.containers ?? []) {
    const env: EnvMap = {};
    for (const e of c.env ?? []) if (e.valueFrom === undefined) env[e.name] = e.value ?? '';
    out.set(c.name, env);
  }
  return out;
}

const sameEnv = (a: EnvMap, b: EnvMap): boolean => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
};

function seenOf(w: WorkloadView): Seen {
  return {
    env: envOf(w),
    restartedAt: w.spec?.template?.metadata?.annotations?.[RESTARTED_AT_ANNOTATION],
    desired: w.spec?.replicas ?? 1,
    ready: w.status?.readyReplicas ?? 0,
  };
}

/**
 * Watches the Deployments and StatefulSets of `namespace` in the simulator's store and tells `listener`
 * about env changes, finished rollout restarts and replica count changes. What exists when the watch
 * starts is the baseline, not an event. Each change is reported once.
 *
 * Events are delivered in order, after the store write that caused them (never inside it): the store
 * calls watchers synchronously, and a listener that wrote back or threw there would break the writer.
 */
export function watchWorkloads(
  store: ObjectStore,
  namespace: string,
  listener: WorkloadListener,
  options: WatchWorkloadsOptions = {},
): WorkloadWatch {
  const seen = new Map<string, Seen>();
  let closed = false;
  let queue = Promise.resolve();

  const emit = (event: WorkloadEvent) => {
    queue = queue.then(async () => {
      if (closed) return;
      try {
        await listener(event);
      } catch (e) {
        options.onError?.(e, event);
      }
    });
  };

  const onEvent = (kind: WorkloadKind) => (e: WatchEvent) => {
    const w = e.object as unknown as WorkloadView;
    const key = `${kind}/${w.metadata.name}`;
    if (e.type === 'DELETED') {
      seen.delete(key);
      return;
    }
    const now = seenOf(w);
    const before = seen.get(key);
    if (!before) {
      seen.set(key, now);
      return;
    }
    const name = w.metadata.name;
    for (const [container, after] of now.env) {
      const previous = before.env.get(container) ?? {};
      if (!sameEnv(previous, after))
        emit({ type: 'envChanged', kind, name, container, before: previous, after });
    }
    now.pendingRestart = before.pendingRestart;
    if (now.restartedAt !== undefined && now.restartedAt !== before.restartedAt) {
      // A newer restart supersedes one still rolling out: only the rollout of the latest is reported.
      now.pendingRestart = { restartedAt: now.restartedAt, generation: w.metadata.generation };
    }
    const pending = now.pendingRestart;
    if (pending && (w.status?.observedGeneration ?? 0) >= pending.generation) {
      const status = rolloutStatus(e.object as unknown as V1Deployment & V1StatefulSet, kind);
      if (status.state === 'done') {
        now.pendingRestart = undefined;
        emit({ type: 'restarted', kind, name, restartedAt: pending.restartedAt });
      }
    }
    if (now.desired !== before.desired || now.ready !== before.ready) {
      emit({
        type: 'replicasChanged',
        kind,
        name,
        desired: now.desired,
        ready: now.ready,
        before: { desired: before.desired, ready: before.ready },
      });
    }
    seen.set(key, now);
  };

  const stops = [
    store.watch(DEPLOYMENTS, namespace, undefined, onEvent('Deployment')),
    store.watch(STATEFULSETS, namespace, undefined, onEvent('StatefulSet')),
  ];
  const close = () => {
    if (closed) return;
    closed = true;
    for (const stop of stops) stop();
  };
  return { close, [Symbol.dispose]: close };
}
