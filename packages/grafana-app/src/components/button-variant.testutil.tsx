import { Button, type ButtonVariant } from '@grafana/ui';
import { render } from '@testing-library/react';
import React from 'react';

const VARIANTS: ButtonVariant[] = ['primary', 'secondary', 'destructive', 'success'];

/**
 * For tests: the variant a solid, medium Grafana Button was rendered with. @grafana/ui sets no attribute for
 * it; its styles are emotion classes derived from (theme, variant, size, fill), so the button's class equals
 * that of a reference Button of the same variant rendered with the same theme.
 */
export function buttonVariant(button: HTMLElement): ButtonVariant | undefined {
  const references = render(
    <div>
      {VARIANTS.map((v) => (
        <Button key={v} variant={v} data-variant={v}>
          {v}
        </Button>
      ))}
    </div>,
  );
  try {
    const found = VARIANTS.find(
      (v) => references.container.querySelector(`[data-variant="${v}"]`)?.className === button.className,
    );
    return found;
  } finally {
    references.unmount();
  }
}
