/** The backing store cannot be reached or did not answer in time; retrying later may work. */
export class BrokerUnavailableError extends Error {
  override readonly name: string = 'BrokerUnavailableError';
}

/** The backing store answered with an error that retrying will not fix. */
export class BrokerCommandError extends Error {
  override readonly name = 'BrokerCommandError';
}

/**
 * An append reached the primary (and its subscribers) but not the required
 * replicas in time: it may be lost if the primary fails now.
 */
export class BrokerNotReplicatedError extends BrokerUnavailableError {
  override readonly name = 'BrokerNotReplicatedError';
  constructor(readonly id: string, message: string) {
    super(message);
  }
}
