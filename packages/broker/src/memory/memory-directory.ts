import type { Directory, MemberConnectionsPage, RoomOccupancy, UserPresence } from '../directory.js';
import type { MemoryHub } from './memory-broker.js';

/** The Directory of a single process: reads the hub its MemoryBrokers share. */
export class MemoryDirectory implements Directory {
  constructor(private readonly hub: MemoryHub) {}

  async activeRooms(after: string | undefined, limit: number): Promise<{ rooms: RoomOccupancy[]; next?: string }> {
    const rooms = this.hub.occupiedRooms()
      .filter(([name]) => after === undefined || name > after)
      .slice(0, limit + 1)
      .map(([room, state]) => ({ room, members: state.presence.size, connections: sum([...state.presence.values()].flatMap((nodes) => [...nodes.values()])) }));
    return rooms.length > limit ? { rooms: rooms.slice(0, limit), next: rooms[limit - 1]!.room } : { rooms };
  }

  async roomMembers(room: string, after: string | undefined, limit: number): Promise<MemberConnectionsPage> {
    const state = this.hub.room(room);
    const users = state.present.page(after, limit + 1);
    const members = users.slice(0, limit).map((user) => ({ user, connections: sum(state.presence.get(user)?.values() ?? []) }));
    return users.length > limit ? { members, count: state.present.size, next: users[limit - 1]! } : { members, count: state.present.size };
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
