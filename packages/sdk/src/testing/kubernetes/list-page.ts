import type { KubeObject } from './object-store';
import { badRequest } from './status-error';

/** One page of a list: the items, and where the next page starts when there is one. */
export interface ListPage {
  items: KubeObject[];
  continue?: string;
  /** Items after this page; only known (and only sent, like the real server) when the list is unfiltered. */
  remainingItemCount?: number;
}

interface ContinueToken {
  v: 'meta.k8s.io/v1';
  rv: string;
  /** Key (`namespace/name` or `name`) of the last item already returned. */
  start: string;
}

/** Sort key of an object in a list, the same order the store lists in. */
export const listKey = (o: KubeObject) =>
  o.metadata.namespace === undefined ? o.metadata.name : `${o.metadata.namespace}/${o.metadata.name}`;

/** `limit` from the query: a positive integer, or undefined (0 and absent mean "no limit"). */
export function parseLimit(raw: string | null): number | undefined {
  if (raw === null || raw === '') return undefined;
  if (!/^\d+$/.test(raw))
    throw badRequest(`invalid value for limit: strconv.ParseInt: parsing "${raw}": invalid syntax`);
  const limit = Number(raw);
  return limit === 0 ? undefined : limit;
}

/**
 * Cuts `items` (already filtered and sorted by {@link listKey}) into the page the request asks for.
 * The continue token is opaque to clients (base64 JSON, as the real server's), and keyed by the last
 * item returned, so objects created or deleted between pages do not shift the next page.
 */
export function paginate(
  items: KubeObject[],
  options: { limit?: number; continue?: string | null; resourceVersion: string; filtered: boolean },
): ListPage {
  let rest = items;
  if (options.continue) {
    const start = decodeToken(options.continue).start;
    rest = items.filter((o) => listKey(o).localeCompare(start) > 0);
  }
  if (options.limit === undefined || rest.length <= options.limit) return { items: rest };
  const page = rest.slice(0, options.limit);
  const token: ContinueToken = {
    v: 'meta.k8s.io/v1',
    rv: options.resourceVersion,
    start: listKey(page.at(-1) as KubeObject),
  };
  return {
    items: page,
    continue: Buffer.from(JSON.stringify(token)).toString('base64'),
    ...(options.filtered ? {} : { remainingItemCount: rest.length - page.length }),
  };
}

function decodeToken(text: string): ContinueToken {
  try {
    const token = JSON.parse(Buffer.from(text, 'base64').toString('utf8')) as Partial<ContinueToken>;
    if (token.v === 'meta.k8s.io/v1' && typeof token.start === 'string') return token as ContinueToken;
  } catch {
    // fall through to the error below
  }
  throw badRequest(`continue key is not valid: the continue token "${text}" was not issued by this server`);
}
