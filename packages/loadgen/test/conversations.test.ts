import { describe, expect, it } from 'vitest';
import { checkCounts, directPairs, groupMembers, planConversations } from '../src/index.js';
import type { ConversationFinal, DeviceView } from '../src/conversation-plan.js';

describe('directPairs', () => {
  it.each([[10, 4], [10, 3], [6, 5], [2, 1], [7, 2]])('%i users, %i each: every user in exactly that many, no pair twice', (users, perUser) => {
    const pairs = directPairs(users, perUser);
    expect(pairs).toHaveLength((users * perUser) / 2);
    const keys = pairs.map(([a, b]) => [Math.min(a, b), Math.max(a, b)].join('-'));
    expect(new Set(keys).size).toBe(pairs.length);
    for (const [a, b] of pairs) expect(a).not.toBe(b);
    const degree = new Array<number>(users).fill(0);
    for (const [a, b] of pairs) { degree[a]!++; degree[b]!++; }
    expect(degree).toEqual(new Array<number>(users).fill(perUser));
  });

  it('refuses what cannot be built', () => {
    expect(() => directPairs(4, 4)).toThrow(/at least 5 users/);
    expect(() => directPairs(7, 3)).toThrow(/even number of users/);
  });
});

describe('planConversations', () => {
  const options = { urls: ['ws://a/ws', 'ws://b/ws', 'ws://c/ws'], users: 12, devices: 2, directs: 3, groups: 2, groupSize: 5, joined: 0, groupShare: 0.3, openRooms: false };

  it('puts a user\'s devices on different URLs, joins at least the first member of each room, and shares the messages out', () => {
    const plan = planConversations(options, 'seed01');
    expect(plan.users[4]!.urls).toEqual(['ws://b/ws', 'ws://c/ws']);
    expect(plan.rooms.filter((r) => r.kind === 'direct')).toHaveLength(18);
    expect(plan.rooms.filter((r) => r.kind === 'group').map((r) => r.members)).toEqual([groupMembers(12, 2, 5, 0), groupMembers(12, 2, 5, 1)]);
    expect(groupMembers(12, 2, 5, 1)).toEqual([6, 7, 8, 9, 10]);
    for (const room of plan.rooms) expect(room.joinDevice.filter((d) => d >= 0)).toHaveLength(1); // joined 0: the first member only
    expect(plan.rooms.reduce((s, r) => s + r.weight, 0)).toBeCloseTo(1);
    expect(plan.rooms.filter((r) => r.kind === 'group').reduce((s, r) => s + r.weight, 0)).toBeCloseTo(0.3);
    expect(planConversations(options, 'seed01')).toEqual(plan);
  });
});

describe('checkCounts', () => {
  const view = (user: number, device: number, unread: Record<string, number>, listed: Record<string, number> | null = unread, delivered: Record<string, number> = {}): DeviceView =>
    ({ user, device, unread, listed, delivered, trail: {} });
  const final = (f: Partial<ConversationFinal>): ConversationFinal => ({
    acked: [], reads: [], devices: [], unanswered: 0, readsFailed: 0, listsFailed: 0,
    histograms: { ack: { counts: [], max: 0 }, delivery: { counts: [], max: 0 }, unread: { counts: [], max: 0 }, list: { counts: [], max: 0 }, read: { counts: [], max: 0 } },
    ...f,
  });
  // Room r: user 0 posts 1-0 and 3-0, user 1 posts 2-0, 4-0 and 5-0; user 1 read up to 3-0.
  const acked: Array<[string, string, number]> = [['r', '1-0', 0], ['r', '2-0', 1], ['r', '3-0', 0], ['r', '4-0', 1], ['r', '5-0', 1]];
  const roomsOf = new Map([[0, ['r']], [1, ['r']]]);

  it('expects the messages after the newest of the user\'s reads and own messages, on every device, from workers in any order', () => {
    const check = checkCounts(roomsOf, [
      final({ acked: acked.slice(3), devices: [view(0, 0, { r: 2 }, { r: 2 }, { r: 5 }), view(0, 1, { r: 2 })] }),
      final({ acked: acked.slice(0, 3), reads: [[1, 'r', '3-0'], [1, 'r', '2-0']], devices: [view(1, 0, { r: 0 })] }),
    ], false);
    expect(check).toEqual({ pairs: 2, views: 3, unreadMismatches: 0, listMismatches: 0, disagreeing: 0, deliveryMismatches: 0, examples: [] });
  });

  it('counts each kind of mismatch and names it', () => {
    const check = checkCounts(roomsOf, [final({
      acked,
      reads: [[1, 'r', '3-0']],
      devices: [view(0, 0, { r: 2 }, { r: 3 }, { r: 4 }), view(0, 1, { r: 1 }), view(1, 0, {}, null)],
    })], false, (u) => `user${u}`);
    expect(check).toMatchObject({ unreadMismatches: 2, listMismatches: 3, disagreeing: 1, deliveryMismatches: 1 });
    expect(check.examples).toContain('user1 device 0 in r: latest unread none, expected 0 (5 messages, position 5-0)');
    expect(check.examples).toContain('user0 device 0 in r: 4 messages delivered of 5 acknowledged');
  });

  it('open rooms: only deliveries', () => {
    const check = checkCounts(roomsOf, [final({ acked, devices: [view(0, 0, {}, null, { r: 5 }), view(1, 0, {}, null, { r: 5 })] })], true);
    expect(check).toMatchObject({ pairs: 2, views: 2, unreadMismatches: 0, listMismatches: 0, deliveryMismatches: 0 });
  });
});
