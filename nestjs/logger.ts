import type { KafkaLogger } from 'kafka-napi';

/** The methods of Nest's `Logger` (or any `LoggerService`) this layer uses. */
export interface NestLoggerLike {
  log(message: string): unknown;
  error(message: string): unknown;
  warn(message: string): unknown;
  debug?(message: string): unknown;
  verbose?(message: string): unknown;
}

/**
 * Adapts a Nest `Logger` to the addon's `KafkaLogger`. The addon passes its
 * client name as a second argument; Nest would print that as another message,
 * and the Nest logger already carries the right context, so it is dropped here.
 */
export function toKafkaLogger(logger: NestLoggerLike): KafkaLogger {
  return {
    error: (message) => logger.error(message),
    warn: (message) => logger.warn(message),
    info: (message) => logger.log(message),
    debug: (message) => (logger.debug ?? logger.log).call(logger, message),
    verbose: (message) => (logger.verbose ?? logger.debug ?? logger.log).call(logger, message),
  };
}
