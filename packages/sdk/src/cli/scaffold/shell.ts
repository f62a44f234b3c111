/** `value` as one shell word: as is when it is plain, else in single quotes (POSIX shells). */
export function shellWord(value: string): string {
  if (/^[\w./:@%+=,-]+$/.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
