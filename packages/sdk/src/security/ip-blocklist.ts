import { BlockList, isIP } from 'node:net';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { Duration, toMillis } from '../core/duration';
import { parseOptions } from '../core/parse-options';

/**
 * The Redis key of the blocklist: a sorted set, member = an address or CIDR block (`203.0.113.7`,
 * `198.51.100.0/24`, `2001:db8::/32`), score = when its block ends (epoch ms). A sorted set rather than a key per
 * address because blocks may be ranges: a service reads the live ones with one `ZRANGE … BYSCORE`.
 */
export const DEFAULT_BLOCKLIST_KEY = 'aiwebtest:security:ip-blocklist';

/** An IPv4/IPv6 address or CIDR block. */
export const IpOrCidr = z.union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], {
  error: (issue) =>
    `expected an IPv4/IPv6 address or CIDR block such as "203.0.113.7" or "198.51.100.0/24", got ${JSON.stringify(issue.input)}`,
});

/** Options of {@link ipBlocklist}. */
export const IpBlocklistOptions = z.object({
  /** The sorted set's key. @default "aiwebtest:security:ip-blocklist" */
  key: z.string().min(1).default(DEFAULT_BLOCKLIST_KEY),
  /** How long a read of the list is reused: one `ZRANGE` per this interval however many requests. @default "1s" */
  cacheTtl: Duration.default('1s'),
  /**
   * What `isBlocked` answers while Redis cannot be read and no earlier list is cached: `allow` keeps the service
   * up (the block is a mitigation, not the only defence), `deny` refuses everyone. @default "allow"
   */
  onError: z.enum(['allow', 'deny']).default('allow'),
});
export type IpBlocklistOptions = z.output<typeof IpBlocklistOptions>;
export type IpBlocklistOptionsInput = z.input<typeof IpBlocklistOptions>;

/** A service's view of the blocklist. */
export interface IpBlocklist {
  /** True when `ip` (v4, v6, or v4-mapped v6) falls in a block that has not ended. */
  isBlocked(ip: string): Promise<boolean>;
  /** The live blocks (member → end), read now, bypassing the cache. */
  entries(): Promise<{ block: string; until: Date }[]>;
  /** Drops the cached list: the next `isBlocked` reads Redis. */
  invalidate(): void;
}

/**
 * The enforcement half of `blockIps`, for services: answers "is this address blocked?" from the Redis
 * sorted set, reading it at most once per `cacheTtl`. Blocks past their end are ignored even before anything
 * removes them.
 */
export function ipBlocklist(redis: Redis, options: IpBlocklistOptionsInput = {}): IpBlocklist {
  const o = parseOptions('ipBlocklist', IpBlocklistOptions, options);
  const ttlMs = toMillis(o.cacheTtl);
  let cached: { list: BlockList; readAt: number; ends: number } | undefined;
  let reading: Promise<{ list: BlockList; ends: number }> | undefined;

  const read = async () => {
    const now = Date.now();
    const raw = await redis.zrangebyscore(o.key, now, '+inf', 'WITHSCORES');
    const list = new BlockList();
    let ends = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const block = raw[i] as string;
      ends = Math.min(ends, Number(raw[i + 1]));
      addBlock(list, block);
    }
    return { list, ends, readAt: now };
  };

  const current = async (): Promise<BlockList | undefined> => {
    const now = Date.now();
    if (cached && now - cached.readAt < ttlMs && now < cached.ends) return cached.list;
    reading ??= read().finally(() => {
      reading = undefined;
    });
    try {
      const fresh = await reading;
      cached = { list: fresh.list, ends: fresh.ends, readAt: now };
      return fresh.list;
    } catch {
      return cached?.list;
    }
  };

  return {
    async isBlocked(ip) {
      const address = normalizeAddress(ip);
      const family = isIP(address);
      if (family === 0) return false;
      const list = await current();
      if (!list) return o.onError === 'deny';
      return list.check(address, family === 6 ? 'ipv6' : 'ipv4');
    },
    async entries() {
      const raw = await redis.zrangebyscore(o.key, Date.now(), '+inf', 'WITHSCORES');
      const out: { block: string; until: Date }[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2)
        out.push({ block: raw[i] as string, until: new Date(Number(raw[i + 1])) });
      return out;
    },
    invalidate() {
      cached = undefined;
    },
  };
}

/** Options of {@link blocklistHook}. */
export interface BlocklistHookOptions {
  /** The client address of a request. @default `request.ip` (set Fastify's `trustProxy` behind a proxy) */
  ipOf?: (request: FastifyRequest) => string;
}

/**
 * A Fastify `onRequest` hook that answers 403 `{ error: { code: 'IP_BLOCKED', message } }` to blocked addresses:
 * `app.addHook('onRequest', blocklistHook(ipBlocklist(redis)))`.
 */
export function blocklistHook(blocklist: IpBlocklist, options: BlocklistHookOptions = {}) {
  const ipOf = options.ipOf ?? ((request: FastifyRequest) => request.ip);
  return async function ipBlocklistOnRequest(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const ip = ipOf(request);
    if (!(await blocklist.isBlocked(ip))) return;
    await reply
      .code(403)
      .send({ error: { code: 'IP_BLOCKED', message: `Requests from ${normalizeAddress(ip)} are blocked.` } });
  };
}

/** `::ffff:203.0.113.7` (how a dual-stack socket reports an IPv4 client) as `203.0.113.7`. */
export function normalizeAddress(ip: string): string {
  const trimmed = ip.trim();
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(trimmed);
  return mapped?.[1] ?? trimmed;
}

function addBlock(list: BlockList, block: string): void {
  const slash = block.indexOf('/');
  const address = slash < 0 ? block : block.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return; // not written by blockIps; ignore rather than fail every request
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (slash < 0) list.addAddress(address, type);
  else list.addSubnet(address, Number(block.slice(slash + 1)), type);
}
