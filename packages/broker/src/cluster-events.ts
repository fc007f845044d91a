/**
 * Events about the cluster as a whole, recorded by the same atomic step that
 * decides them (a presence change, an append), so each happens once per
 * cluster whichever node saw it. Their JSON (`{"id","type","ts","data"}`) is
 * built where they are recorded; delivering them is the EventFeed reader's job.
 */
export const CLUSTER_EVENT_TYPES = [
  'user.online',
  'user.offline',
  'room.occupied',
  'room.vacated',
  'member.joined',
  'member.left',
  'message.created',
  'member.unread',
  'message.updated',
  'message.deleted',
] as const;

export type ClusterEventType = (typeof CLUSTER_EVENT_TYPES)[number];

export interface EventRecording {
  /** Which events to record; none when empty. */
  types: readonly ClusterEventType[];
  /** Most events a stream keeps undelivered; older ones go beyond it. */
  backlogLimit: number;
}
