/**
 * Kubernetes resource quantities (`250m`, `1.5`, `128Mi`, `1e9`, `123456n`), as the API server and
 * metrics-server write them, read into plain numbers: cores for CPU, bytes for memory.
 *
 * The grammar is the API server's: a signed decimal number followed by a binary suffix (`Ki Mi Gi Ti Pi Ei`),
 * a decimal suffix (`n u m k M G T P E`, or none) or a decimal exponent (`e3`, `E-2`). `K` is not a
 * Kubernetes suffix (the API server refuses `1K`), so it is refused here too.
 */

const BINARY: Record<string, number> = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};
const DECIMAL: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};
const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/;

/**
 * The value of a quantity in its base unit (cores, bytes); throws a `RangeError` naming the text when it is
 * not a Kubernetes quantity.
 */
export function parseQuantity(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text)) throw new RangeError(`Invalid quantity ${text}: expected a finite number.`);
    return text;
  }
  const match = QUANTITY.exec(text.trim());
  if (!match) {
    throw new RangeError(
      `Invalid quantity "${text}": expected a number with an optional suffix such as "250m", "2", "128Mi", "1G" or "1e9".`,
    );
  }
  const number = Number(match[1]);
  if (match[2] !== undefined) return number * 10 ** Number(match[2].slice(1));
  const suffix = match[3] ?? '';
  return number * (BINARY[suffix] ?? DECIMAL[suffix] ?? 1);
}

/** Like {@link parseQuantity}, but `undefined` for a missing or malformed quantity (a check reports, it does not throw). */
export function quantityOrUndefined(text: string | number | undefined | null): number | undefined {
  if (text === undefined || text === null || text === '') return undefined;
  try {
    return parseQuantity(text);
  } catch {
    return undefined;
  }
}

/** CPU the way `kubectl top` prints it: whole millicores (`250m`), never rounded below `1m` when non-zero. */
export function formatCpu(cores: number): string {
  if (cores === 0) return '0m';
  return `${Math.max(1, Math.round(cores * 1000))}m`;
}

/** Memory the way `kubectl top` prints it: whole mebibytes (`128Mi`), or `Ki` below one mebibyte. */
export function formatMemory(bytes: number): string {
  if (bytes >= 2 ** 20 || bytes === 0) return `${Math.round(bytes / 2 ** 20)}Mi`;
  return `${Math.max(1, Math.round(bytes / 2 ** 10))}Ki`;
}
