import type { ConversationRestore } from '../conversation-restore.js';

/** A single process loses its conversations only with itself: always intact, nothing to restore. */
export class MemoryConversationRestore implements ConversationRestore {
  async intact(): Promise<boolean> {
    return true;
  }

  async restore(): Promise<boolean> {
    return false;
  }

  async markIntact(): Promise<void> {}
}
