import type { Directory, MemberConnections, RoomOccupancy, UserPresence } from '../directory.js';
import type { MemoryHub } from './memory-broker.js';

/** The Directory of a single process: reads the hub its MemoryBrokers share. */
export class MemoryDirectory implements Directory {
  constructor(private readonly hub: MemoryHub) {}

  async activeRooms(after: string | undefined, limit: number): Promise<{ rooms: RoomOccupancy[]; next?: string }> {
    const rooms = this.hub.occupiedRooms()
      .filter(([name]) => after === undefined || name > after)
      .slice(0, limit + 1)
      .map(([room, state]) => ({ room, members: state.presence.size }));
    return rooms.length > limit ? { rooms: rooms.slice(0, limit), next: rooms[limit - 1]!.room } : { rooms };
  }

  async roomMembers(room: string): Promise<MemberConnections[]> {
    const members = [...this.hub.room(room).presence].map(([user, nodes]) => ({ user, connections: sum(nodes.values()) }));
    return members.sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
  }

  async userPresence(user: string): Promise<UserPresence> {
    const connections = sum(this.hub.findUser(user)?.connections.values() ?? []);
    const rooms = this.hub.occupiedRooms().filter(([, state]) => state.presence.has(user)).map(([name]) => name);
    return { online: connections > 0, connections, rooms };
  }

}

function sum(values: Iterable<number>): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}
