import type { ServerResponse } from 'node:http';
import { type FieldSelector, matchesFields } from './field-selector';
import { type LabelSelector, matchesLabels } from './label-selector';
import type { KubeObject, ObjectStore, WatchEvent } from './object-store';
import { apiVersionOf, type ResourceType } from './resources';
import { StatusError } from './status-error';

/** What a watch request asked for, decoded. */
export interface WatchRequest {
  type: ResourceType;
  /** Undefined: all namespaces (or a cluster-scoped type). */
  namespace?: string;
  /** Only this object (legacy `/watch/…/{name}` paths). */
  name?: string;
  resourceVersion?: string;
  labelSelector: LabelSelector;
  fieldSelector: FieldSelector;
  /** Close the stream after this long (`timeoutSeconds`). */
  timeoutMs?: number;
  /** `allowWatchBookmarks`: send BOOKMARK events every `bookmarkIntervalMs`. */
  bookmarks: boolean;
  bookmarkIntervalMs: number;
  /** `sendInitialEvents`: ADDED for what exists, then a BOOKMARK marking the end of them. */
  sendInitialEvents: boolean;
  /** How objects go on the wire (as a one-row Table for `kubectl get -w`). @default the object itself */
  render?: (object: KubeObject) => unknown;
}

/** An open watch stream; `stop()` ends it cleanly (the client sees the end of the body). */
export interface WatchStream {
  stop(): void;
}

type WireEvent = { type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR'; object: unknown };

/**
 * Streams a watch as newline-delimited JSON over a chunked response, like the API server.
 *
 * With selectors, an object that starts or stops matching is reported as ADDED or DELETED (the real
 * server does the same, so caches built from a filtered watch stay right). A resourceVersion older than
 * the store's history gets a 200 response carrying one ERROR event with a 410 `Expired` Status, which is
 * what clients (informers) expect in order to relist.
 */
export function startWatch(store: ObjectStore, res: ServerResponse, request: WatchRequest): WatchStream {
  const { type } = request;
  res.writeHead(200, {
    'Content-Type': 'application/json',
    'Cache-Control': 'no-cache, private',
    'Transfer-Encoding': 'chunked',
  });
  res.flushHeaders();

  let open = true;
  let unsubscribe = () => {};
  let bookmarkTimer: NodeJS.Timeout | undefined;
  let timeoutTimer: NodeJS.Timeout | undefined;
  const stream: WatchStream = {
    stop() {
      if (!open) return;
      open = false;
      unsubscribe();
      clearTimeout(bookmarkTimer);
      clearTimeout(timeoutTimer);
      res.end();
    },
  };
  res.on('close', () => stream.stop());

  const send = (event: WireEvent) => {
    if (open) res.write(`${JSON.stringify(event)}\n`);
  };
  const bookmark = (annotations?: Record<string, string>) =>
    send({
      type: 'BOOKMARK',
      object: {
        kind: type.kind,
        apiVersion: apiVersionOf(type),
        metadata: { resourceVersion: store.resourceVersion, ...(annotations ? { annotations } : {}) },
      },
    });

  const matches = (o: KubeObject) =>
    (request.name === undefined || o.metadata.name === request.name) &&
    matchesLabels(request.labelSelector, o.metadata.labels) &&
    matchesFields(request.fieldSelector, type, o);
  // Whether each object (by uid) matched when last reported, to turn selector transitions into ADDED/DELETED.
  const matched = new Map<string, boolean>();
  const onEvent = ({ type: kind, object }: WatchEvent) => {
    const uid = object.metadata.uid;
    const now = matches(object);
    // An object first seen in a MODIFIED event (a resumed watch) is assumed to have matched before iff it matches now.
    const before = matched.get(uid) ?? (kind === 'ADDED' ? false : now);
    const wire = request.render ? request.render(object) : object;
    if (kind === 'DELETED') {
      matched.delete(uid);
      if (before || now) send({ type: 'DELETED', object: wire });
      return;
    }
    matched.set(uid, now);
    if (now) send({ type: before ? 'MODIFIED' : 'ADDED', object: wire });
    else if (before) send({ type: 'DELETED', object: wire });
  };

  try {
    const from = request.sendInitialEvents ? undefined : request.resourceVersion;
    unsubscribe = store.watch(type, request.namespace, from, onEvent);
  } catch (e) {
    if (!(e instanceof StatusError)) throw e;
    send({ type: 'ERROR', object: e.toStatus() });
    stream.stop();
    return stream;
  }
  if (request.sendInitialEvents) bookmark({ 'k8s.io/initial-events-end': 'true' });
  if (request.bookmarks) {
    const tick = () => {
      bookmark();
      bookmarkTimer = setTimeout(tick, request.bookmarkIntervalMs);
    };
    bookmarkTimer = setTimeout(tick, request.bookmarkIntervalMs);
  }
  if (request.timeoutMs !== undefined) timeoutTimer = setTimeout(() => stream.stop(), request.timeoutMs);
  return stream;
}
