import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogLevel } from './config.js';

export type { Logger };

/** One JSON logger per process, the node id on every line; tokens never reach the output. */
export function createLogger(level: LogLevel, nodeId: string, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      base: { node: nodeId, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'apiKey'], censor: '[redacted]' },
    },
    destination,
  );
}
