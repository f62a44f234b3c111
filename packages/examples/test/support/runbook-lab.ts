import { Engine, openStore, type Runbook, type RunStore } from '@aiwebtest/runbooks';
import { type AiWebTest, type ConnectAiWebTest, connectAiWebTest } from '../../src/aiwebtest/environment';
import type { LabOptions } from '../../src/lab/start-lab';
import { startTestLab, type TestLab } from './test-lab';

/** One runbook of the pack on a lab of the test file's own, run by an engine on an in-memory store. */
export interface RunbookLab {
  lab: TestLab;
  /** The platform's clients as production builds them: the database through the lab's PgBouncer. */
  platform: AiWebTest;
  store: RunStore;
  engine: Engine;
  /** Closes the clients, the store and the lab (its database, Redis database and directory go with it). */
  close(): Promise<void>;
}

/** Starts a lab and an engine with the runbook `create` makes for it (`create({ connect })`). */
export async function startRunbookLab(
  create: (options: { connect: ConnectAiWebTest }) => Runbook,
  options: Partial<LabOptions> = {},
): Promise<RunbookLab> {
  const [lab, store] = await Promise.all([startTestLab(options), openStore({ dataDir: ':memory:' })]);
  const platform = connectAiWebTest(lab.env);
  const engine = new Engine({ store, runbooks: [create({ connect: () => platform })] });
  return {
    lab,
    platform,
    store,
    engine,
    close: async () => {
      await platform.close();
      await store.close();
      await lab.close();
    },
  };
}
