import { isRunbookId } from '../../core/runbook';
import { UsageError } from '../exit-codes';

/** The names a scaffolded runbook uses, all derived from its id. */
export interface ScaffoldNames {
  /** The runbook id, `checkout-latency`; also the file name. */
  id: string;
  /** A title for the catalog, `Checkout latency`. */
  title: string;
  /** The factory function's name, `checkoutLatencyRunbook`. */
  factory: string;
  /** The alert that triggers it, `CheckoutLatency` (Prometheus alert names are PascalCase by convention). */
  alertname: string;
}

/**
 * Derives the names of a scaffolded runbook from `id`. Throws a {@link UsageError} (exit 2) when `id` is
 * not lowercase words joined by dashes, suggesting the id it probably meant.
 */
export function scaffoldNames(id: string): ScaffoldNames {
  if (!isRunbookId(id)) {
    const suggestion = id
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '');
    const hint = isRunbookId(suggestion) ? ` Did you mean "${suggestion}"?` : '';
    throw new UsageError(
      `Invalid runbook id "${id}": expected lowercase words (a-z, 0-9) joined by dashes, e.g. "checkout-latency".${hint} Nothing was written.`,
    );
  }
  const words = id.split('-');
  const pascal = words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
  const camel = (words[0] ?? '') + pascal.slice(words[0]?.length ?? 0);
  // An identifier cannot start with a digit: `5xx-errors` becomes `runbook5xxErrors`.
  const factory = /^[a-z]/.test(camel) ? `${camel}Runbook` : `runbook${pascal}`;
  const title = words.join(' ');
  return { id, title: title.charAt(0).toUpperCase() + title.slice(1), factory, alertname: pascal };
}
