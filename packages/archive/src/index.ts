export { ArchiveStore, ArchiveUnavailableError, type ArchiveBatch, type ArchiveRange, type ArchivedMessage, type ArchiveStoreOptions } from './archive-store.js';
export { MIGRATIONS } from './migrations.js';
export type { ArchivedChange } from './message-changes.js';
export { migrate } from './migrate.js';
export { ConversationStore, type StoredConversation, type StoredMember } from './conversation-store.js';
