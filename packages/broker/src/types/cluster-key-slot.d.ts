// cluster-key-slot (installed with ioredis) ships no types.
declare module 'cluster-key-slot' {
  /** The hash slot of a key, honouring its first non-empty hash tag. */
  export default function calculateSlot(key: string | Buffer): number;
}
