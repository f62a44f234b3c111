import { DEFAULT_BREAKER_PREFIX } from '../resilience/breaker-control-keys';

/** A key namespace of the SDK's own state in Redis, under its component's default prefix. */
export interface SdkKeyNamespace {
  /** The namespace's keys are `root` itself and the keys that start with `root:`. */
  root: string;
  /** Whose state it is, for plans and findings. */
  owner: string;
}

/**
 * The SDK's own state under its default prefixes: keys a cache clear must not take for a cache, although some are
 * strings with a TTL — breaker heartbeats (`aiwebtest:breaker:{svc}:replica:<id>`), GCRA limiter state
 * (`ratelimit:<name>:gcra:<key>`), a strict mode that expires (`ratelimit:strict-mode:<svc>`), the request queue's
 * drain rate (`{agent:requests:queue}:rate`). The rate limiter's and request queue's defaults are repeated here
 * (their modules do not export them); a test checks that they still match.
 */
export const SDK_KEY_NAMESPACES: readonly SdkKeyNamespace[] = [
  { root: DEFAULT_BREAKER_PREFIX, owner: 'breaker control' },
  { root: 'ratelimit', owner: 'rate limiters and strict mode' },
  { root: 'agent:requests:queue', owner: 'the request queue' },
  { root: '{agent:requests:queue}', owner: 'the request queue' },
];

/**
 * The namespaces a cache clear under `prefix` must leave: those some key starting with `prefix` can fall in,
 * unless `prefix` itself starts with the namespace's root (`ratelimit:login:` asks for the limiter's keys by name).
 */
export function sdkNamespacesUnder(prefix: string): SdkKeyNamespace[] {
  return SDK_KEY_NAMESPACES.filter((n) => `${n.root}:`.startsWith(prefix) && !prefix.startsWith(n.root));
}

/** A test for whether a key (its exact bytes) is in one of `namespaces`; it returns the namespace, if any. */
export function sdkNamespaceMatcher(namespaces: readonly SdkKeyNamespace[]) {
  const roots = namespaces.map((n) => ({ namespace: n, bytes: Buffer.from(n.root, 'utf8') }));
  return (key: Buffer): SdkKeyNamespace | undefined =>
    roots.find(
      ({ bytes }) =>
        key.length >= bytes.length &&
        key.subarray(0, bytes.length).equals(bytes) &&
        (key.length === bytes.length || key[bytes.length] === 0x3a),
    )?.namespace;
}
