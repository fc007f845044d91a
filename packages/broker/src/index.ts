export type {
  CountedMessage, Broker, BrokerListener, BrokerStats, AppendRequest, AppendResult, ChangeKind, DirectRequest, DirectResult, StoredChange, StoredMessage, RangeResult, RangeGap, StreamHead,
} from './broker.js';
export { compareUserIds, type MemberPage, type Presence, type PresenceChange, type RoomHeadcount } from './presence.js';
export { BrokerUnavailableError, BrokerCommandError, BrokerNotReplicatedError, BrokerRefusal, ChangeRefusedError, ConversationConflictError, NotAMemberError, PositionAheadError, RestrictedError } from './errors.js';
export { pairOf, type Membership, type RoomAccess } from './membership.js';
export { unreadOf, type ConversationState, type ReadPosition, type ReadPositions, type ReadState } from './read-positions.js';
export type { OfflineNotices } from './offline-notices.js';
export type { ConversationRecord, ConversationRestore } from './conversation-restore.js';
export { RedisConversationRestore } from './redis/conversation-restore.js';
export { MemoryOfflineNotices } from './memory/memory-offline-notices.js';
export { RedisOfflineNotices, type RedisOfflineNoticesOptions } from './redis/offline-notices.js';
export { MemoryMembership } from './memory/memory-membership.js';
export { MemoryReadPositions } from './memory/memory-read-positions.js';
export { RedisMembership, UNLIST_GRACE_MS } from './redis/membership.js';
export { RedisReadPositions } from './redis/read-positions.js';
export { MemoryBroker, MemoryHub, type MemoryBrokerOptions } from './memory/memory-broker.js';
export { RedisBroker, type RedisBrokerOptions } from './redis/redis-broker.js';
export { createRedisClients, duplicateForChannel, type HostPort, type RedisClients, type RedisClientOptions, type RedisTarget } from './redis/clients.js';
export type { PubSub } from './redis/pubsub.js';
export { keySlot } from './redis/slot.js';
export { streamCapacity } from './trim.js';
export { KeySpace } from './redis/keys.js';
export { RedisArchiveFeed, type ArchiveFeedOptions, type ArchiveRead } from './redis/archive-feed.js';
export { CLUSTER_EVENT_TYPES, type ClusterEventType, type EventRecording } from './cluster-events.js';
export type { Directory, MemberConnections, MemberConnectionsPage, RoomOccupancy, UserPresence } from './directory.js';
export type { EventFeed, ClaimedEvents, PendingEvent, StreamBacklog } from './event-feed.js';
export { MemoryDirectory } from './memory/memory-directory.js';
export { MemoryEventFeed } from './memory/memory-events.js';
export { RedisDirectory } from './redis/directory.js';
export { RevocationTable, type Revocation, type TokenRevocations } from './revocations.js';
export { MemoryRevocations } from './memory/memory-revocations.js';
export { RedisRevocations, type RedisRevocationsOptions } from './redis/revocations.js';
export { RedisEventFeed, type RedisEventFeedOptions } from './redis/event-feed.js';
export type {
  ChangeRefusalReason, ChangeResult, DeleteChange, EditChange, EraseRequest, ErasedMessage, MessageChanges, ReactionChange,
} from './changes.js';
export type { Moderation, Restriction, RoomModeration } from './moderation.js';
export { MemoryMessageChanges } from './memory/memory-changes.js';
export { MemoryModeration } from './memory/memory-moderation.js';
export { RedisModeration } from './redis/moderation.js';
