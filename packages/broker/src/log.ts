/** The subset of a pino logger the broker writes to. */
export interface BrokerLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export const silentLog: BrokerLog = { debug() {}, info() {}, warn() {}, error() {} };
