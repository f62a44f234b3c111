// A TypeDoc plugin (typedoc.json `plugin`): heading anchors as GitHub makes them, so that the guides' links work
// in the API reference as they do on GitHub. TypeDoc 0.28 builds a heading's anchor from its plain text only:
// "### `serve`" gets "_" where GitHub gives "serve", and a link to CLI.md#serve would break (a warning, which
// fails the build). Giving each code span in a heading its text as a child token makes TypeDoc's slug read it
// too; the code span still renders as code. Should TypeDoc stop reading children, the build fails again on the
// first such link instead of publishing broken ones.

/** @param {import('typedoc').Application} app */
export function load(app) {
  // At bootstrap end: the options are final then (plugins load before the config file is read).
  app.on('bootstrapEnd', () => {
    const previous = app.options.getValue('markdownItLoader');
    app.options.setValue('markdownItLoader', (parser) => {
      previous(parser);
      parser.core.ruler.push('heading-code-slug', (state) => {
        state.tokens.forEach((token, i) => {
          if (token.type !== 'inline' || state.tokens[i - 1]?.type !== 'heading_open') return;
          for (const child of token.children ?? []) {
            if (child.type !== 'code_inline' || child.children) continue;
            const text = new state.Token('text', '', 0);
            text.content = child.content;
            child.children = [text];
          }
        });
      });
    });
  });
}
