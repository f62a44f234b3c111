// Extends the stock @grafana/create-plugin config (.config/, left unedited so `create-plugin update`
// still applies) the way Grafana documents: import it, adjust, export.
//
// Two changes. Nested plugins' own logos (src/panels/<name>/img/) are copied: the stock patterns copy only
// the app's, and Grafana serves a nested plugin's assets from its own folder. And TS/TSX go through esbuild-loader instead of swc-loader. pnpm here refuses to install
// @swc/core until its install script is approved in pnpm-workspace.yaml (`allowBuilds`), while esbuild is
// already approved. Once @swc/core is allowed, delete this file and build with .config/webpack directly.
import CopyWebpackPlugin from 'copy-webpack-plugin';
import type { Configuration, RuleSetRule } from 'webpack';
import grafanaConfig, { type Env } from './.config/webpack/webpack.config.ts';

function usesSwcLoader(rule: unknown): rule is RuleSetRule {
  const use = (rule as RuleSetRule | null)?.use;
  return typeof use === 'object' && use !== null && !Array.isArray(use) && use.loader === 'swc-loader';
}

const config = async (env: Env): Promise<Configuration> => {
  const base = await grafanaConfig(env);
  const rules = base.module?.rules ?? [];
  const swcRules = rules.filter(usesSwcLoader);
  if (swcRules.length !== 1) {
    throw new Error(
      `Expected one swc-loader rule in .config/webpack/webpack.config.ts, found ${swcRules.length}: ` +
        'update the loader swap in webpack.config.ts to match the new stock config.',
    );
  }
  base.module = {
    ...base.module,
    rules: rules.map((rule) =>
      // Same target as the stock swc options; JSX and the rest come from tsconfig.json.
      usesSwcLoader(rule)
        ? { ...rule, use: { loader: 'esbuild-loader', options: { target: 'es2015' } } }
        : rule,
    ),
  };
  base.plugins = [
    ...(base.plugins ?? []),
    new CopyWebpackPlugin({ patterns: [{ from: 'panels/*/img/*.svg', to: '.', noErrorOnMissing: true }] }),
  ];
  return base;
};

export default config;
