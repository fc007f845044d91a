/** The first id after every possible stream id, and the id before every one. */
export const MAX_STREAM_ID = '18446744073709551615-18446744073709551615';
export const MIN_STREAM_ID = '0-0';
/** `(MAX_STREAM_ID` is not a valid range start in Redis; this one is, and nothing newer than it exists either. */
export const BEFORE_MAX_STREAM_ID = '18446744073709551615-18446744073709551614';
