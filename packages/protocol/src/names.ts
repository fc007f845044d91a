/** User ids and room names share one pattern (PROTOCOL.md). */
export const NAME_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/;

export function isValidName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value);
}
