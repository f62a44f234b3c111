import { createInterface, type Interface } from 'node:readline';
import type { Json } from '../core/json';
import type { Plan } from '../core/plan';
import type { ConfirmPlan } from '../engine/run-execution';
import { type CliIo, writeLines } from './io';
import { renderPlan } from './render';

/**
 * The `Apply? [y/N]` prompt for plans that policy lets the operator apply alone. Lines are read from stdin
 * as they come (answers typed ahead are kept); end of input or Ctrl-C counts as "no".
 */
export class ConfirmPrompt {
  readonly #io: CliIo;
  readonly #out: CliIo['stdout'];
  #rl: Interface | undefined;
  #lines: AsyncIterator<string> | undefined;

  constructor(io: CliIo, out: CliIo['stdout']) {
    this.#io = io;
    this.#out = out;
  }

  /** The engine's `confirm` callback. */
  readonly confirm: ConfirmPlan = async (plan: Plan<Json>, at: { step: string }) => {
    writeLines(this.#out, [`Plan for step "${at.step}":`, ...renderPlan(plan)]);
    const yes = await this.ask('Apply? [y/N] ');
    writeLines(this.#out, yes ? '  confirmed' : '  declined: the plan is not applied');
    return yes;
  };

  /** Writes `question` and reads one answer: "y"/"yes" is yes; anything else, end of input or Ctrl-C is no. */
  async ask(question: string): Promise<boolean> {
    this.#out.write(question);
    const answer = await this.#nextLine();
    if (answer === undefined) this.#out.write('\n');
    return /^\s*y(es)?\s*$/i.test(answer ?? '');
  }

  async #nextLine(): Promise<string | undefined> {
    if (this.#io.signal?.aborted) return undefined;
    if (!this.#lines) {
      this.#rl = createInterface({ input: this.#io.stdin, terminal: false });
      this.#lines = this.#rl[Symbol.asyncIterator]();
    }
    const lines = this.#lines;
    const aborted = new Promise<undefined>((resolve) =>
      this.#io.signal?.addEventListener('abort', () => resolve(undefined), { once: true }),
    );
    const next = await Promise.race([lines.next(), aborted]);
    return next === undefined || next.done ? undefined : next.value;
  }

  /** Releases stdin. */
  close(): void {
    this.#rl?.close();
  }
}

/** Asks one yes/no question on the terminal; anything but "y"/"yes" (or end of input) is no. */
export async function askYesNo(io: CliIo, out: CliIo['stdout'], question: string): Promise<boolean> {
  const prompt = new ConfirmPrompt(io, out);
  try {
    return await prompt.ask(question);
  } finally {
    prompt.close();
  }
}
