import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/**
 * The part of `kustomize build` that deploy/kubernetes uses, and nothing more: `resources` (files and
 * directories holding a kustomization), `namespace`, `labels` (with `includeSelectors`), `images` and
 * `replicas`. The kustomization schema is strict, so a field this does not implement fails the test
 * instead of being ignored; the output is what `kubectl apply -k` would send.
 */
const Kustomization = z.strictObject({
  apiVersion: z.literal('kustomize.config.k8s.io/v1beta1'),
  kind: z.literal('Kustomization'),
  namespace: z.string().min(1).optional(),
  labels: z
    .array(
      z.strictObject({
        pairs: z.record(z.string(), z.string()),
        includeSelectors: z.boolean().optional(),
      }),
    )
    .optional(),
  resources: z.array(z.string().min(1)).min(1),
  images: z
    .array(
      z.strictObject({ name: z.string(), newName: z.string().optional(), newTag: z.string().optional() }),
    )
    .optional(),
  replicas: z.array(z.strictObject({ name: z.string(), count: z.number().int().min(0) })).optional(),
});

/** A manifest as the API server takes it. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  // biome-ignore lint/suspicious/noExplicitAny: manifests are free-form YAML, read by the tests field by field
  [field: string]: any;
}

/** Reads a YAML file holding one or more documents; a YAML error names the file. */
function readManifests(file: string): Manifest[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((doc) => {
    if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as Manifest | null;
    return value ? [value] : [];
  });
}

/** An object field, created empty when it is missing (kustomize adds a label to a missing selector too). */
function field(parent: Record<string, unknown>, key: string): Record<string, string> {
  if (parent[key] === undefined) parent[key] = {};
  return parent[key] as Record<string, string>;
}

/** Where a kind's label selector and pod template labels are (kustomize's selector field specs). */
function selectorLabels(m: Manifest): Array<Record<string, string>> {
  const maps: Array<Record<string, string>> = [];
  if (m.kind === 'Service') maps.push(field(m.spec, 'selector'));
  if (m.kind === 'Deployment' || m.kind === 'StatefulSet') {
    maps.push(field(field(m.spec, 'selector'), 'matchLabels'));
    maps.push(field(field(m.spec.template, 'metadata'), 'labels'));
  }
  if (m.kind === 'PodDisruptionBudget') maps.push(field(field(m.spec, 'selector'), 'matchLabels'));
  return maps;
}

function containersOf(m: Manifest): Array<{ image?: string }> {
  const pod = m.spec?.template?.spec;
  return pod ? [...(pod.initContainers ?? []), ...(pod.containers ?? [])] : [];
}

/** The image's name without its tag (digests are not used here), as kustomize's `images[].name` matches it. */
function imageName(image: string): string {
  const colon = image.lastIndexOf(':');
  return colon > image.lastIndexOf('/') ? image.slice(0, colon) : image;
}

/** Builds the kustomization in `dir` (a directory holding kustomization.yaml) into its manifests. */
export function kustomizeBuild(dir: string): Manifest[] {
  const file = join(dir, 'kustomization.yaml');
  const parsed = Kustomization.safeParse(readManifests(file)[0]);
  if (!parsed.success) {
    throw new Error(
      `${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const k = parsed.data;
  const manifests = k.resources.flatMap((entry) => {
    const path = resolve(dir, entry);
    return statSync(path).isDirectory() ? kustomizeBuild(path) : readManifests(path);
  });
  for (const m of manifests) {
    if (k.namespace && m.kind !== 'Namespace') m.metadata.namespace = k.namespace;
    for (const { pairs, includeSelectors } of k.labels ?? []) {
      m.metadata.labels = { ...m.metadata.labels, ...pairs };
      if (includeSelectors) for (const labels of selectorLabels(m)) Object.assign(labels, pairs);
    }
    for (const image of k.images ?? []) {
      for (const container of containersOf(m)) {
        if (!container.image || imageName(container.image) !== image.name) continue;
        const tag = image.newTag ?? container.image.slice(imageName(container.image).length + 1);
        container.image = `${image.newName ?? image.name}${tag ? `:${tag}` : ''}`;
      }
    }
    for (const replicas of k.replicas ?? []) {
      if (m.metadata.name === replicas.name && ['Deployment', 'StatefulSet'].includes(m.kind)) {
        m.spec.replicas = replicas.count;
      }
    }
  }
  return manifests;
}
