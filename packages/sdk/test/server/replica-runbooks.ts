/**
 * The runbook module the replica tests load into real `runbook serve` processes (`RUNBOOK_MODULES`).
 * `long-wait` takes `seconds` in a durable sleep between two checks that report the process executing
 * them, so a test sees which replica started the run and which one finished it.
 */
import { z } from 'zod';
import { defineCheck, defineRunbook, finding } from '../../src/index';

const whoAmI = defineCheck({
  kind: 'test.process',
  description: 'Reports the process executing the step',
  async run() {
    return finding('ok', `executed by pid ${process.pid}`, { pid: process.pid });
  },
});

export const longWait = defineRunbook({
  id: 'long-wait',
  title: 'Wait a while between two checks',
  severity: 'P3',
  input: z.object({ seconds: z.number().min(0).max(120) }),
  async run({ input, step }) {
    await step.check('before', whoAmI);
    await step.sleep('wait', input.seconds * 1000);
    await step.check('after', whoAmI);
    return step.done('waited');
  },
});
