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

/**
 * The widest blocks accepted: a /16 of IPv4 (65 536 addresses) and a /48 of IPv6 (one site). Anything wider, up to
 * `0.0.0.0/0` or `::/0`, locks out a large part of the internet, customers included: no incident needs that.
 */
export const WIDEST_PREFIX = { ipv4: 16, ipv6: 48 } as const;

/** Blocks wider than these (more than one /24 of IPv4, one /64 of IPv6) need a second person (risk `high`). */
export const WIDE_PREFIX = { ipv4: 24, ipv6: 64 } as const;

/** An IPv4/IPv6 address or CIDR block, no wider than {@link WIDEST_PREFIX}. */
export const IpOrCidr = z
  .union([z.ipv4(), z.ipv6(), z.cidrv4(), z.cidrv6()], {
    error: (issue) =>
      `expected an IPv4/IPv6 address or CIDR block such as "203.0.113.7" or "198.51.100.0/24", got ${JSON.stringify(issue.input)}`,
  })
  .superRefine((block, ctx) => {
    const { family, prefix } = prefixOf(block);
    if (prefix < WIDEST_PREFIX[family]) {
      ctx.addIssue({
        code: 'custom',
        message: `${JSON.stringify(block)} is too wide to block: ${family === 'ipv4' ? 'IPv4' : 'IPv6'} blocks may be at most /${WIDEST_PREFIX[family]}; list narrower ones`,
      });
    }
  });

/** The family and prefix length of an address (a /32 or /128) or CIDR block. */
export function prefixOf(block: string): { family: 'ipv4' | 'ipv6'; prefix: number } {
  const slash = block.indexOf('/');
  const family = isIP(slash < 0 ? block : block.slice(0, slash)) === 6 ? 'ipv6' : 'ipv4';
  const prefix = slash < 0 ? (family === 'ipv6' ? 128 : 32) : Number(block.slice(slash + 1));
  return { family, prefix };
}

/** True when a block is wider than {@link WIDE_PREFIX} (blocking it is a `high` risk action). */
export function isWideBlock(block: string): boolean {
  const { family, prefix } = prefixOf(block);
  return prefix < WIDE_PREFIX[family];
}

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
  /**
   * How long `isBlocked` waits for Redis before answering from the cache (or `onError`). Short because it runs on
   * every request: while Redis is down, ioredis queues commands until it reconnects, and an unbounded wait would
   * stall every request for that long. @default "100ms"
   */
  readTimeout: Duration.default('100ms'),
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
  const timeoutMs = toMillis(o.readTimeout);
  type Read = { list: BlockList; blocks: { block: string; until: number }[]; ends: number; readAt: number };
  let cached: Read | undefined;
  let reading: Promise<Read> | undefined;

  const read = async (): Promise<Read> => {
    const now = Date.now();
    const raw = await redis.zrangebyscore(o.key, now, '+inf', 'WITHSCORES');
    const blocks: Read['blocks'] = [];
    for (let i = 0; i + 1 < raw.length; i += 2)
      blocks.push({ block: raw[i] as string, until: Number(raw[i + 1]) });
    return listOf(blocks, now);
  };

  // The cached list without the blocks that ended since it was read (an outage must not extend a block).
  const live = (read: Read, now: number): Read =>
    now < read.ends
      ? read
      : listOf(
          read.blocks.filter((b) => b.until > now),
          read.readAt,
        );

  const current = async (): Promise<BlockList | undefined> => {
    const now = Date.now();
    if (cached && now - cached.readAt < ttlMs && now < cached.ends) return cached.list;
    // One read in flight however many requests wait; a read that outlives the timeout still fills the cache.
    reading ??= read()
      .then((fresh) => {
        cached = fresh;
        return fresh;
      })
      .finally(() => {
        reading = undefined;
      });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeoutMs);
      timer.unref();
    });
    try {
      const fresh = await Promise.race([reading, timedOut]);
      if (fresh) return fresh.list;
    } catch {
      // Redis failed: fall through to what was read before.
    } finally {
      clearTimeout(timer);
    }
    if (!cached) return undefined;
    cached = live(cached, Date.now());
    return cached.list;
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

function listOf(blocks: { block: string; until: number }[], readAt: number) {
  const list = new BlockList();
  let ends = Number.POSITIVE_INFINITY;
  for (const b of blocks) {
    ends = Math.min(ends, b.until);
    addBlock(list, b.block);
  }
  return { list, blocks, ends, readAt };
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
