// The change AUTHORING.md asks a newcomer to make to the scaffolded runbook ("Make it yours"): two steps
// added before its restart. Here inside a function of the scaffold's shape, so that the type check compiles
// them; packages/examples/test/e2e/newcomer.test.ts pastes the guide's copy into a scaffolded runbook and
// runs it, against the simulator and against the lab.
import type { StepTools } from '../../src/core/runbook';
import type { Kubernetes } from '../../src/kubernetes';

export async function beforeTheRestart(
  step: StepTools,
  k8s: Kubernetes,
  namespace: string,
  deployment: string,
) {
  // docs:begin make-it-yours.ts
  // Evidence for whoever reads the run: why the pods die, and what the cluster said about them.
  const selector = `app=${deployment}`;
  await step.check('logs', k8s.podLogs({ namespace, selector, previous: true, tailLines: 50 }));
  await step.check('events', k8s.events({ namespace, selector, types: ['Warning'] }));
  // docs:end make-it-yours.ts
}
