import type { KubeObject, ObjectStore } from '../object-store';
import { EVENTS, NAMESPACES } from '../resources';

export type EventType = 'Normal' | 'Warning';

/** Records core/v1 Events the way kubelet and the controllers do, folding repeats into `count`. */
export interface EventRecorder {
  record(involved: KubeObject, type: EventType, reason: string, message: string, component: string): void;
}

/** An {@link EventRecorder} writing to the store; a repeat of the same event bumps `count` and `lastTimestamp`. */
export function storeEventRecorder(store: ObjectStore): EventRecorder {
  // Event names by what makes two events "the same", so a repeat is found without listing every event.
  const named = new Map<string, string>();
  return {
    record(involved, type, reason, message, component) {
      const namespace = involved.metadata.namespace ?? 'default';
      // The namespace is being deleted with everything in it: nothing to report to.
      if (!store.find(NAMESPACES, undefined, namespace)) return;
      const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const key = JSON.stringify([involved.metadata.uid, reason, message]);
      const name = named.get(key);
      const existing = name === undefined ? undefined : store.find(EVENTS, namespace, name);
      if (existing) {
        store.update(EVENTS, { ...existing, count: Number(existing.count ?? 1) + 1, lastTimestamp: now });
        return;
      }
      const created = store.create(EVENTS, {
        metadata: { generateName: `${involved.metadata.name}.`, namespace },
        involvedObject: {
          apiVersion: involved.apiVersion,
          kind: involved.kind,
          name: involved.metadata.name,
          namespace,
          uid: involved.metadata.uid,
          resourceVersion: involved.metadata.resourceVersion,
        },
        reason,
        message,
        type,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component },
        reportingComponent: component,
      });
      named.set(key, created.metadata.name);
    },
  };
}
