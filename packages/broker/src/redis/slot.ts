/// <reference path="../types/cluster-key-slot.d.ts" />
import calculateSlot from 'cluster-key-slot';

/** Redis Cluster's hash slot of a key or shard channel (its hash tag's CRC16, mod 16384), as ioredis computes it. */
export function keySlot(key: string): number {
  return calculateSlot(key);
}
