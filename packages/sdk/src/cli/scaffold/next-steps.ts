import { shellWord } from './shell';

/**
 * One thing to do after `runbook init`, with its commands. A command is a list of parts: joined with spaces
 * it is the single line to paste into a shell (`--json`); people see each part on its own line, joined with
 * ` \` continuations.
 */
export interface NextStep {
  what: string;
  commands: string[][];
}

/** Where the scaffolded files are, as the user names them from the working directory, and what is missing. */
export interface NextStepsInput {
  id: string;
  /** The runbook module, e.g. `runbooks/checkout-latency.ts`. */
  modulePath: string;
  /** Its test, e.g. `runbooks/checkout-latency.test.ts`. */
  testPath: string;
  /** Packages that do not resolve from the files' directory. */
  missing: readonly string[];
  /** The commands that install them (empty when nothing is missing). */
  install: readonly string[];
}

/** What a newcomer does next: install what is missing, run the tests, diagnose a real Deployment. */
export function nextSteps(input: NextStepsInput): NextStep[] {
  // `--runbooks` takes a path only when it starts with `.` or `/`; anything else is a package name.
  const spec = /^\.{0,2}\//.test(input.modulePath) ? input.modulePath : `./${input.modulePath}`;
  const steps: NextStep[] = [];
  if (input.install.length > 0) {
    steps.push({
      what: `Install the packages it imports (missing here: ${input.missing.join(', ')})`,
      commands: input.install.map((command) => [command]),
    });
  }
  steps.push({
    what: 'Run its tests (no cluster needed)',
    commands: [[`npx vitest run ${shellWord(input.testPath)}`]],
  });
  steps.push({
    what: 'Diagnose a Deployment in your cluster (checks only, changes nothing); fill in the <…>',
    commands: [
      [
        'KUBECONFIG=~/.kube/config RUNBOOK_KUBE_CONTEXT=<context> RUNBOOK_KUBE_NAMESPACES=<namespace>',
        `npx runbook diagnose ${input.id} --runbooks ${shellWord(spec)}`,
        '--input namespace=<namespace> --input deployment=<deployment>',
      ],
    ],
  });
  return steps;
}

/** A step's commands as single lines, for `--json`. */
export function commandLines(step: NextStep): string[] {
  return step.commands.map((parts) => parts.join(' '));
}
