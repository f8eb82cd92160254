"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.toKafkaLogger = toKafkaLogger;
/**
 * Adapts a Nest `Logger` to the addon's `KafkaLogger`. The addon passes its
 * client name as a second argument; Nest would print that as another message,
 * and the Nest logger already carries the right context, so it is dropped here.
 */
function toKafkaLogger(logger) {
    return {
        error: (message) => logger.error(message),
        warn: (message) => logger.warn(message),
        info: (message) => logger.log(message),
        debug: (message) => (logger.debug ?? logger.log).call(logger, message),
        verbose: (message) => (logger.verbose ?? logger.debug ?? logger.log).call(logger, message),
    };
}
