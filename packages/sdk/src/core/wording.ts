// How findings and plans word counts and lists, the same in every integration.

/** `"1 pod"`, `"3 pods"`, `"1,024 keys"`. */
export function plural(count: number, noun: string, pluralNoun = `${noun}s`): string {
  return `${count.toLocaleString('en-US')} ${count === 1 ? noun : pluralNoun}`;
}

/** `"a, b, c and 2 more"`: the first `max` items of a list for a one-line summary. */
export function listSome(items: readonly string[], max = 3): string {
  if (items.length <= max) return items.join(', ');
  return `${items.slice(0, max).join(', ')} and ${items.length - max} more`;
}
