import { z } from 'zod';
import { Duration, toMillis } from '../../../core/duration';
import { InputValidationError } from '../../../core/errors';
import { type LabelSelector, matchesLabels, parseLabelSelector } from '../label-selector';
import type { KubeObject } from '../object-store';
import { StatusError } from '../status-error';

/** Which pods a pod fault applies to: a label selector in the query syntax, in one namespace or all. */
const PodTarget = {
  /** Only pods in this namespace. @default every namespace */
  namespace: z.string().min(1).optional(),
  /** Label selector in the `labelSelector` query syntax, e.g. `app=web,tier!=db`. */
  selector: z.string().trim().min(1, 'expected a label selector such as "app=web"'),
};

/** A fault the simulated kubelet (or node controller) applies until it is cleared. Unknown fields are refused. */
export const PodFault = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('crashLoop'),
    /** Exit code of every crash; 0 gives reason `Completed`, anything else `Error`. @default 1 */
    exitCode: z.number().int().min(0).max(255).optional(),
    /** The error line the container writes to its log before exiting. */
    message: z.string().min(1).optional(),
    ...PodTarget,
  }),
  z.strictObject({ kind: z.literal('oomKill'), ...PodTarget }),
  z.strictObject({ kind: z.literal('imagePullError'), ...PodTarget }),
  z.strictObject({ kind: z.literal('readinessFailure'), ...PodTarget }),
  z.strictObject({
    kind: z.literal('slowStart'),
    /** Extra time before the containers start, on top of the cluster's `startDelay`. */
    delay: Duration,
    ...PodTarget,
  }),
  z.strictObject({
    kind: z.literal('nodeNotReady'),
    /** Name of the node whose kubelet stops posting status. */
    node: z.string().min(1),
  }),
]);

/** A fault to inject; see {@link PodFaults.inject}. */
export type PodFault =
  | ((
      | { kind: 'crashLoop'; exitCode?: number; message?: string }
      | { kind: 'oomKill' }
      | { kind: 'imagePullError' }
      | { kind: 'readinessFailure' }
      | { kind: 'slowStart'; delay: Duration }
    ) & { namespace?: string; selector: string })
  | { kind: 'nodeNotReady'; node: string };

// The hand-written type is what users read; this keeps it and the schema from drifting apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesType: Same<z.input<typeof PodFault>, PodFault> = true;
void schemaMatchesType;

/** The kinds of fault that act on pods (every kind but `nodeNotReady`). */
export type PodFaultKind = Exclude<PodFault['kind'], 'nodeNotReady'>;

/** A pod fault as the kubelet looks it up: parsed, with its selector compiled and durations in ms. */
export interface ActivePodFault {
  id: string;
  kind: PodFaultKind;
  exitCode: number;
  message?: string;
  delayMs: number;
}

interface Entry {
  id: string;
  fault: PodFault;
  selector?: LabelSelector;
}

/** A handle on an injected fault. */
export interface InjectedFault {
  id: string;
  /** Removes the fault; the affected pods recover on their next restart or probe. */
  clear(): void;
}

/**
 * The faults switched on in a simulated cluster. Tests and the local lab inject them; the kubelet and the
 * node controller read them on every sync, so a fault acts on existing pods as well as new ones, and
 * clearing it lets them recover the way they would in a real cluster.
 */
export class PodFaults {
  readonly #entries = new Map<string, Entry>();
  readonly #listeners = new Set<() => void>();
  #next = 1;

  /** Validates and switches on a fault; throws an `InputValidationError` naming the bad field. */
  inject(fault: PodFault): InjectedFault {
    const parsed = PodFault.safeParse(fault);
    if (!parsed.success) {
      throw new InputValidationError(
        'pod fault',
        parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      );
    }
    const value = parsed.data as PodFault;
    let selector: LabelSelector | undefined;
    if (value.kind !== 'nodeNotReady') {
      try {
        selector = parseLabelSelector(value.selector);
      } catch (e) {
        if (!(e instanceof StatusError)) throw e;
        throw new InputValidationError('pod fault', [{ path: 'selector', message: e.message }]);
      }
    }
    const id = `fault-${this.#next++}`;
    this.#entries.set(id, { id, fault: structuredClone(value), ...(selector ? { selector } : {}) });
    this.#changed();
    return { id, clear: () => this.clear(id) };
  }

  /** Switches a fault off; an unknown or already cleared id is ignored, so clearing twice is harmless. */
  clear(id: string): void {
    if (this.#entries.delete(id)) this.#changed();
  }

  clearAll(): void {
    if (this.#entries.size === 0) return;
    this.#entries.clear();
    this.#changed();
  }

  /** The active faults, oldest first. */
  list(): (PodFault & { id: string })[] {
    return [...this.#entries.values()].map((e) => ({ ...structuredClone(e.fault), id: e.id }));
  }

  /** Calls `listener` whenever faults change (the cluster wakes its loop); returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The pod faults matching a pod (by namespace and labels), oldest first. */
  forPod(pod: KubeObject): ActivePodFault[] {
    const out: ActivePodFault[] = [];
    for (const { id, fault, selector } of this.#entries.values()) {
      if (fault.kind === 'nodeNotReady' || !selector) continue;
      if (fault.namespace !== undefined && fault.namespace !== pod.metadata.namespace) continue;
      if (!matchesLabels(selector, pod.metadata.labels)) continue;
      out.push({
        id,
        kind: fault.kind,
        exitCode: fault.kind === 'oomKill' ? 137 : fault.kind === 'crashLoop' ? (fault.exitCode ?? 1) : 0,
        ...(fault.kind === 'crashLoop' && fault.message ? { message: fault.message } : {}),
        delayMs: fault.kind === 'slowStart' ? toMillis(fault.delay) : 0,
      });
    }
    return out;
  }

  /** True while a `nodeNotReady` fault names the node. */
  isNodeNotReady(node: string): boolean {
    for (const { fault } of this.#entries.values()) {
      if (fault.kind === 'nodeNotReady' && fault.node === node) return true;
    }
    return false;
  }

  #changed(): void {
    for (const l of [...this.#listeners]) l();
  }
}
