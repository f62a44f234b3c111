/** The text that replaces a secret. */
export const REDACTED = '[REDACTED]';
/**
 * What a plan shows as the `after` of a secret that the change sets to a different value. It differs from
 * {@link REDACTED} on purpose: after a crash the engine decides whether an apply took effect by comparing a
 * fresh plan's `before` with the interrupted plan's `after`, and two equal markers would read as "done".
 */
export const REDACTED_NEW_VALUE = '[REDACTED: new value]';

// Keys are compared lowercased without `_`/`-`, by suffix: `githubToken`, `DB_PASSWORD`, `x-api-key` match,
// `maxTokens` and `tokenCount` do not.
const SECRET_KEY_SUFFIXES = [
  'password',
  'passwd',
  'secret',
  'token',
  'apikey',
  'authorization',
  'cookie',
  'credential',
  'credentials',
  'privatekey',
  'accesskey',
  'secretkey',
];

const SECRET_PATTERNS: [RegExp, string][] = [
  // user:password@ in connection strings and URLs
  [/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, `$1${REDACTED}@`],
  // HTTP authorization values
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g, `$1 ${REDACTED}`],
  // key=value and key: value pairs with a secret-looking key
  [
    /\b([A-Za-z0-9_-]*(?:password|passwd|secret|token|api[_-]?key))(\s*[=:]\s*)("?)[^\s"&,;]+\3/gi,
    `$1$2$3${REDACTED}$3`,
  ],
  // well-known API key shapes (OpenRouter/OpenAI sk-…, GitHub ghp_…, AWS AKIA…)
  [/\bsk-[A-Za-z0-9_-]{16,}/g, REDACTED],
  [/\bgh[pousr]_[A-Za-z0-9]{20,}/g, REDACTED],
  [/\bAKIA[0-9A-Z]{16}\b/g, REDACTED],
];

// Cheap pre-check: text that matches none of these cannot match any pattern above, so most strings
// (summaries, names, log lines) skip the replacements entirely.
const MIGHT_HOLD_SECRET = /:\/\/[^\s]*@|Bearer|Basic|passw|secret|token|api[_-]?key|sk-|gh[pousr]_|AKIA/i;

/** True when a key or field name names a secret (`password`, `DB_PASSWORD`, `githubToken`, `x-api-key`, …). */
export function isSecretName(key: string): boolean {
  const normalized = key.toLowerCase().replace(/[_-]/g, '');
  return SECRET_KEY_SUFFIXES.some((suffix) => normalized.endsWith(suffix));
}

/** Removes secrets from values before they are stored, logged or shown. */
export interface Redactor {
  /** A deep copy of `value` with secret-keyed members and secret-looking substrings replaced by `[REDACTED]`. */
  redact<T>(value: T): T;
  /** The same, for one string. */
  redactText(text: string): string;
}

/**
 * Builds a {@link Redactor}. `secrets` are exact values to scrub wherever they appear (the database password
 * the service was configured with, say); values shorter than 4 characters are ignored to avoid mangling text.
 */
export function createRedactor(secrets: Iterable<string> = []): Redactor {
  const known = [...secrets].filter((s) => s.length >= 4).sort((a, b) => b.length - a.length);

  const redactText = (text: string): string => {
    let out = text;
    for (const secret of known) if (out.includes(secret)) out = out.split(secret).join(REDACTED);
    if (!MIGHT_HOLD_SECRET.test(out)) return out;
    for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
    return out;
  };

  const walk = (value: unknown, seen: WeakSet<object>): unknown => {
    if (typeof value === 'string') return redactText(value);
    if (value === null || typeof value !== 'object') return value;
    if (value instanceof Date) return value;
    // `seen` holds the ancestors only: a value shared by two branches is copied twice, a cycle is cut.
    if (seen.has(value)) return '[Circular]';
    seen.add(value);
    try {
      if (Array.isArray(value)) return value.map((v) => walk(v, seen));
      const out: Record<string, unknown> = {};
      for (const [key, member] of Object.entries(value)) {
        out[key] =
          isSecretName(key) && member !== null && member !== undefined && member !== ''
            ? REDACTED
            : walk(member, seen);
      }
      return out;
    } finally {
      seen.delete(value);
    }
  };

  return { redact: <T>(value: T) => walk(value, new WeakSet()) as T, redactText };
}
