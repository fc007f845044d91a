/** The backing store cannot be reached or did not answer in time; retrying later may work. */
export class BrokerUnavailableError extends Error {
  override readonly name = 'BrokerUnavailableError';
}

/** The backing store answered with an error that retrying will not fix. */
export class BrokerCommandError extends Error {
  override readonly name = 'BrokerCommandError';
}
