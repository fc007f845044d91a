/**
 * Who is where in the cluster, read from the shared state (Redis) rather than
 * by asking each node, so an answer never waits for a slow node.
 */
export interface Directory {
  /** Rooms with at least one member, by name after `after`, up to `limit`; `next` pages on (absent at the end). */
  activeRooms(after: string | undefined, limit: number): Promise<{ rooms: RoomOccupancy[]; next?: string }>;

  /** A page of the room's members with their joined connections on every node, by user id after `after`; `next` pages on. */
  roomMembers(room: string, after: string | undefined, limit: number): Promise<MemberConnectionsPage>;

  /** Whether the user has a connection on a live node, how many, and the rooms joined through them. */
  userPresence(user: string): Promise<UserPresence>;
}

export interface RoomOccupancy {
  room: string;
  /** Distinct users present. */
  members: number;
  /** Their connections joined to the room. */
  connections: number;
}

export interface MemberConnections {
  user: string;
  connections: number;
}

export interface MemberConnectionsPage {
  members: MemberConnections[];
  /** Users present in the room when the page was read. */
  count: number;
  next?: string;
}

export interface UserPresence {
  online: boolean;
  connections: number;
  rooms: string[];
}
