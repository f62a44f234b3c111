import { afterAll, beforeAll } from 'vitest';
import type { Runbook } from '../../src/core/runbook';
import { Engine, type EngineOptions } from '../../src/engine/engine';
import type { StoreUnderTest } from './stores';

/**
 * For a `describe` block of engine tests: opens a store before its tests and disposes of it after, builds
 * engines over it (5 s leases), and hands out unique keys so tests sharing the store never collide.
 */
export function engineFixture(open: () => Promise<StoreUnderTest>) {
  let sut: StoreUnderTest | undefined;
  let n = 0;
  beforeAll(async () => {
    sut = await open();
  });
  afterAll(async () => {
    await sut?.dispose();
  });
  const fixture = {
    get sut(): StoreUnderTest {
      if (!sut) throw new Error('the store is opened in beforeAll; use it inside tests');
      return sut;
    },
    engine: (runbooks: Runbook[], options: Partial<EngineOptions> = {}) =>
      new Engine({ store: fixture.sut.store, runbooks, leaseTtl: '5s', ...options }),
    key: (prefix: string) => `${prefix}-${++n}`,
    /** How many keys were handed out, for ids that must differ per test. */
    get count() {
      return n;
    },
  };
  return fixture;
}
