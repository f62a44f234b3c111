import { readFileSync } from 'node:fs';
import { expect } from 'vitest';

/** The code between `// docs:begin <name>` and `// docs:end <name>`. */
function region(source: string, name: string): string {
  const match = new RegExp(`// docs:begin ${name}\\n([\\s\\S]*?)// docs:end ${name}`).exec(source);
  if (!match?.[1]) throw new Error(`no docs region "${name}"`);
  return match[1];
}

const IMPORT = /^import\s[\s\S]*?\sfrom\s+'[^']+';$/gm;
/** Without import statements, whitespace collapsed: what must be equal in the test and in the docs. */
const body = (code: string) => code.replace(IMPORT, '').replace(/\s+/g, ' ').trim();
/** The names a piece of code imports (`type X` counts as `X`), sorted. */
const importedNames = (code: string) =>
  (code.match(IMPORT) ?? [])
    .flatMap((statement) => /\{([^}]*)\}/.exec(statement)?.[1]?.split(',') ?? [])
    .map((name) => name.replace(/^\s*type\s+/, '').trim())
    .filter(Boolean)
    .sort();
/** The `ts` code blocks of a Markdown file. */
const tsBlocks = (markdown: string) => [...markdown.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');

/**
 * Asserts that the Markdown file `doc` has exactly one `ts` block starting with `// <name>` and that it shows
 * the code of the `// docs:begin <name>` region of `file` (the tested code): the same code once imports and
 * whitespace are set aside, importing what it uses from the package, never from the sources.
 */
export function expectDocsShowTested(doc: URL, file: URL, name: string): void {
  const source = readFileSync(file, 'utf8');
  const tested = region(source, name);
  const title = `// ${name}\n`;
  const blocks = tsBlocks(readFileSync(doc, 'utf8')).filter((block) => block.startsWith(title));
  expect(blocks, `one \`ts\` block starting with "${title.trim()}" in ${doc.pathname}`).toHaveLength(1);
  const shown = (blocks[0] ?? '').slice(title.length);
  expect(body(shown)).toBe(body(tested));
  // The docs import what the code uses, and only what the tested file imports too.
  const docImports = importedNames(shown);
  const fileImports = importedNames(source);
  expect(docImports.filter((n) => !fileImports.includes(n))).toEqual([]);
  const used = fileImports.filter((n) => new RegExp(`\\b${n}\\b`).test(body(tested)));
  expect(used.filter((n) => !docImports.includes(n))).toEqual([]);
  expect(shown).not.toMatch(/from '\.\.\//);
}
