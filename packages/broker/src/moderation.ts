/**
 * Who moderates a room and who may not use it: stored beside the room, so the
 * append, change and presence scripts check it in the same atomic step as what
 * it guards. A ban keeps a user from joining and posting; a mute from posting,
 * editing and reacting. Moderators named here delete others' messages (a
 * token's `mod` claim does the same without being stored).
 */
export interface Moderation {
  setModerator(room: string, user: string, moderator: boolean): Promise<void>;

  /** Bans or mutes `user` in `room` with a reason, in place of what there was (a user is banned or muted, not both). */
  restrict(room: string, user: string, restriction: Restriction): Promise<void>;

  /** Lifts a ban or a mute; resolves false when the user had not that one. */
  lift(room: string, user: string, kind: Restriction['kind']): Promise<boolean>;

  /** The room's stored moderators and restricted users. */
  of(room: string): Promise<RoomModeration>;
}

export interface Restriction {
  kind: 'ban' | 'mute';
  reason: string;
}

export interface RoomModeration {
  moderators: string[];
  restricted: Array<Restriction & { user: string }>;
}
