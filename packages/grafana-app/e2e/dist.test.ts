/**
 * Checks of what `pnpm build` ships in dist/, the directory Grafana loads (the e2e global setup builds it
 * first when it is missing or stale): plugin.json complete with its placeholders filled in, module.js in
 * Grafana's loader format (AMD) asking only for Grafana's shared externals, a source map that leads back to
 * src/, and the documents next to it.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { externals } from '../.config/bundler/externals.ts';
import { distIsStale } from './global-setup.ts';

const packageDir = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = join(packageDir, 'dist');
const pkg = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
};
const read = (file: string) => readFileSync(join(dist, file), 'utf8');

const PLACEHOLDERS = /%(VERSION|TODAY|PLUGIN_ID)%/;

const Include = z
  .object({ type: z.string(), name: z.string().min(1), path: z.string().min(1) })
  .passthrough();
/** The `info` block both plugin.json files (app and nested panel) must have complete. */
const PluginInfo = z.object({
  description: z.string().min(1),
  author: z.object({ name: z.string().min(1) }),
  keywords: z.array(z.string()).min(1),
  logos: z.object({ small: z.string().min(1), large: z.string().min(1) }),
  version: z.literal(pkg.version),
  updated: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a YYYY-MM-DD date'),
});
const PluginJson = z
  .object({
    id: z.literal(pkg.name),
    type: z.literal('app'),
    name: z.string().min(1),
    info: PluginInfo,
    includes: z.array(Include).min(1),
    dependencies: z.object({ grafanaDependency: z.string().regex(/^>=\d+\.\d+\.\d+$/, 'a ">=x.y.z" range') }),
  })
  .passthrough();

/** The AMD dependency list of module.js: `define([...], factory)` after the banner comments. */
function amdDependencies(code: string): string[] {
  const match = /^\s*(?:\/\*[\s\S]*?\*\/\s*)*define\((\[[^\]]*\])\s*,\s*(?:function|\()/.exec(code);
  if (!match?.[1]) throw new Error('dist/module.js does not start with define([...], factory)');
  return z.array(z.string()).parse(JSON.parse(match[1]));
}

/** Whether `name` is one of Grafana's shared externals (.config/bundler/externals.ts). */
function isSharedExternal(name: string): boolean {
  for (const entry of externals as unknown[]) {
    if (typeof entry === 'string' && entry === name) return true;
    if (entry instanceof RegExp && entry.test(name)) return true;
    // `{ 'amd-module': 'module' }`: the loader's own `module` (for the public path).
    if (
      entry &&
      typeof entry === 'object' &&
      !(entry instanceof RegExp) &&
      Object.values(entry).includes(name)
    )
      return true;
  }
  return false;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** How many mapping segments of a v3 source map point into each source (decodes the VLQ `mappings`). */
function segmentsPerSource(mappings: string, sources: number): number[] {
  const counts = new Array<number>(sources).fill(0);
  let source = 0;
  for (const line of mappings.split(';')) {
    for (const segment of line.split(',')) {
      if (!segment) continue;
      const fields: number[] = [];
      let value = 0;
      let shift = 0;
      for (const char of segment) {
        const digit = BASE64.indexOf(char);
        value += (digit & 31) << shift;
        if (digit & 32) {
          shift += 5;
        } else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      if (fields.length >= 4) {
        source += fields[1] ?? 0;
        counts[source] = (counts[source] ?? 0) + 1;
      }
    }
  }
  return counts;
}

/** The files of src/ a built script maps back to, checked: each is on disk as mapped, and code maps to it. */
function ownSources(script: string): string[] {
  const code = read(script);
  // Chunks carry the stock config's cache-busting query (`?_cache=<contenthash>`), module.js none.
  const mapUrl =
    script === 'module.js'
      ? /\/\/# sourceMappingURL=module\.js\.map$/
      : /\/\/# sourceMappingURL=\d+\.js\.map\?_cache=[0-9a-f]+$/;
  expect(code.trimEnd(), `${script} names its map`).toMatch(mapUrl);
  const map = z
    .object({
      version: z.literal(3),
      file: z.string().startsWith(script),
      sources: z.array(z.string()),
      sourcesContent: z.array(z.string().nullable()),
      mappings: z.string().min(1),
    })
    .parse(JSON.parse(read(`${script}.map`)));
  const prefix = `webpack://${pkg.name}/./`;
  const own = map.sources
    .map((source, index) => ({ source, index }))
    .filter(({ source }) => source.startsWith(prefix) && !source.startsWith(`${prefix}node_modules/`));
  const counts = segmentsPerSource(map.mappings, map.sources.length);
  for (const { source, index } of own) {
    const file = join(packageDir, 'src', source.slice(prefix.length));
    expect(existsSync(file), `${source} is a file in src/`).toBe(true);
    // The original TypeScript, as it is on disk, and code in the script maps to it.
    expect(map.sourcesContent[index], `${source} content`).toBe(readFileSync(file, 'utf8'));
    expect(counts[index] ?? 0, `mappings into ${source}`).toBeGreaterThan(0);
  }
  // Nothing of the SDK (a Node package: pg, fastify) is bundled; the app uses its types only.
  expect(map.sources.filter((s) => /@aiwebtest|packages\/sdk|\/sdk\/(src|dist)\//.test(s))).toEqual([]);
  return own.map(({ source }) => source.slice(prefix.length));
}

describe('dist/ as built', () => {
  it('is fresh: built after the last change to its inputs', () => {
    expect(distIsStale()).toBe(false);
  });

  it('plugin.json is complete, consistent with package.json, and has no placeholder left', () => {
    const text = read('plugin.json');
    expect(text).not.toMatch(PLACEHOLDERS);
    const plugin = PluginJson.parse(JSON.parse(text));
    for (const logo of [plugin.info.logos.small, plugin.info.logos.large]) {
      expect(existsSync(join(dist, logo)), `logo ${logo} in dist/`).toBe(true);
    }
    for (const include of plugin.includes) {
      if (include.type === 'page') {
        // App pages live under /a/<id>; the one exception is the app's own configuration page.
        const ok = include.path === `/a/${plugin.id}` || include.path.startsWith(`/a/${plugin.id}/`);
        const configPage = include.path === `/plugins/${plugin.id}`;
        expect(ok || configPage, `include "${include.name}" path ${include.path}`).toBe(true);
      } else if (include.type === 'dashboard') {
        expect(existsSync(join(dist, include.path)), `dashboard ${include.path} in dist/`).toBe(true);
      }
    }
  });

  it('module.js is AMD and asks the loader only for Grafana shared externals', () => {
    const code = read('module.js');
    const dependencies = amdDependencies(code);
    expect(dependencies.length).toBeGreaterThan(0);
    expect(dependencies.filter((name) => !isSharedExternal(name))).toEqual([]);
    // Never what Grafana does not provide: react-router-dom v6 is bundled, our SDK and zod are not shared.
    for (const name of dependencies) {
      expect(name).not.toMatch(/^(react-router-dom|zod|@aiwebtest\/)/);
    }
    expect(dependencies).toContain('react');
    expect(dependencies).toContain('@grafana/data');
  });

  it('module.js and its chunks have source maps that lead back to the files in src/', () => {
    const scripts = readdirSync(dist).filter((f) => f.endsWith('.js'));
    expect(scripts).toContain('module.js');
    const ownByScript = new Map<string, string[]>();
    for (const script of scripts) {
      ownByScript.set(script, ownSources(script));
    }
    // module.js holds the plugin object and the link configs Grafana needs at start-up; the pages, the
    // config page and the Runbooks… modal are chunks fetched when first shown.
    const main = ownByScript.get('module.js') ?? [];
    expect(main).toContain('module.tsx');
    expect(main).toContain('extensions/links.tsx');
    expect(main.filter((s) => s.startsWith('pages/') || s === 'extensions/RunbooksModal.tsx')).toEqual([]);
    const chunks = [...ownByScript.entries()]
      .filter(([script]) => script !== 'module.js')
      .flatMap(([, s]) => s);
    for (const lazy of [
      'components/App.tsx',
      'pages/CatalogPage.tsx',
      'config/AppConfig.tsx',
      'extensions/RunbooksModal.tsx',
    ]) {
      expect(chunks, `${lazy} in a chunk`).toContain(lazy);
    }
    // react-router-dom v6 is bundled (Grafana provides only react-router).
    const bundled = scripts.flatMap(
      (script) => (JSON.parse(read(`${script}.map`)) as { sources: string[] }).sources,
    );
    expect(bundled.some((s) => s.includes('/react-router-dom/'))).toBe(true);
  });

  it('ships README, CHANGELOG and LICENSE next to module.js', () => {
    expect(read('LICENSE')).toBe(readFileSync(join(packageDir, 'LICENSE'), 'utf8'));
    expect(read('CHANGELOG.md')).toBe(readFileSync(join(packageDir, 'CHANGELOG.md'), 'utf8'));
    // src/README.md is the plugin's catalog page when it exists (else the package README), placeholders filled.
    const readmeSource = existsSync(join(packageDir, 'src', 'README.md'))
      ? join(packageDir, 'src', 'README.md')
      : join(packageDir, 'README.md');
    const readme = read('README.md');
    expect(readme).not.toMatch(PLACEHOLDERS);
    expect(readme).toBe(
      readFileSync(readmeSource, 'utf8')
        .replace(/%VERSION%/g, pkg.version)
        .replace(/%PLUGIN_ID%/g, pkg.name)
        .replace(/%TODAY%/g, (JSON.parse(read('plugin.json')) as { info: { updated: string } }).info.updated),
    );
  });
});

describe('dist/panels/runbook-actions: the nested panel plugin', () => {
  const panelDir = 'panels/runbook-actions';
  const PanelJson = z
    .object({
      id: z.literal('aiwebtest-runbookactions-panel'),
      type: z.literal('panel'),
      name: z.string().min(1),
      info: PluginInfo,
      dependencies: z.object({ grafanaDependency: z.string().min(1) }),
    })
    .passthrough();

  it('plugin.json is complete, has no placeholder left, and its logos are in its own folder', () => {
    const text = read(`${panelDir}/plugin.json`);
    expect(text).not.toMatch(PLACEHOLDERS);
    const panel = PanelJson.parse(JSON.parse(text));
    const app = JSON.parse(read('plugin.json')) as { dependencies: { grafanaDependency: string } };
    expect(panel.dependencies.grafanaDependency).toBe(app.dependencies.grafanaDependency);
    for (const logo of [panel.info.logos.small, panel.info.logos.large]) {
      // Grafana serves a nested plugin's assets from its own folder (public/plugins/<panel id>/…): a logo
      // outside it (../../img) would not be found.
      expect(logo, 'a path inside the panel folder').not.toMatch(/^(\/|\.\.)/);
      expect(existsSync(join(dist, panelDir, logo)), `logo ${logo} in dist/${panelDir}/`).toBe(true);
    }
  });

  it("is declared in the app's includes by type, name and the path of its plugin.json", () => {
    const app = JSON.parse(read('plugin.json')) as {
      includes: Array<{ type: string; name: string; path?: string }>;
    };
    const panel = PanelJson.parse(JSON.parse(read(`${panelDir}/plugin.json`)));
    // Grafana's plugin validator matches nested plugins to includes by this path, relative to dist/.
    const include = app.includes.find((i) => i.path === `${panelDir}/plugin.json`);
    expect(include).toEqual({ type: 'panel', name: panel.name, path: `${panelDir}/plugin.json` });
  });

  it('module.js is AMD and asks the loader only for Grafana shared externals', () => {
    const dependencies = amdDependencies(read(`${panelDir}/module.js`));
    expect(dependencies.filter((name) => !isSharedExternal(name))).toEqual([]);
    for (const name of dependencies) {
      expect(name).not.toMatch(/^(react-router-dom|zod|@aiwebtest\/)/);
    }
    expect(dependencies).toEqual(expect.arrayContaining(['react', '@grafana/data', '@grafana/ui']));
  });

  it("module.js maps back to the panel's sources and bundles none of the app's pages", () => {
    const map = z
      .object({ sources: z.array(z.string()), sourcesContent: z.array(z.string().nullable()) })
      .parse(JSON.parse(read(`${panelDir}/module.js.map`)));
    const prefix = `webpack://${pkg.name}/./`;
    const own = map.sources.filter((s) => s.startsWith(prefix) && !s.includes('node_modules/'));
    const relative = own.map((s) => s.slice(prefix.length));
    expect(relative).toContain(`${panelDir}/module.tsx`);
    expect(relative).toContain(`${panelDir}/components/RunbookActionsPanel.tsx`);
    // It reuses the app's client and plan view, but not its pages, router or app root.
    expect(relative).toContain('api/client.ts');
    expect(relative).toContain('components/PlanDiff.tsx');
    expect(relative.filter((s) => /^(pages\/|components\/App\.tsx|module\.tsx$)/.test(s))).toEqual([]);
    expect(map.sources.some((s) => s.includes('/react-router-dom/'))).toBe(false);
    for (const source of relative) {
      expect(existsSync(join(packageDir, 'src', source)), `${source} is a file in src/`).toBe(true);
    }
  });
});
