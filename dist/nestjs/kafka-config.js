"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.PLATFORM_TOPICS = void 0;
exports.defineKafkaConfig = defineKafkaConfig;
/** The platform's topics under their `KAFKA_CONFIG.topics` names. */
exports.PLATFORM_TOPICS = {
    MOVIE_EVENTS: 'movie-events',
    MOVIE_VIEWS: 'movie-views',
    USER_ACTIONS: 'user-actions',
    NOTIFICATION_EVENTS: 'notification-events',
};
/**
 * Builds the platform's `KAFKA_CONFIG` from the environment:
 * - `KAFKA_BROKERS` (comma-separated) for the producer and every consumer that names none;
 *   unset, the addon runs its embedded in-process cluster (development only);
 * - `KAFKA_CLIENT_ID` for the producer;
 * - `KAFKA_TOPIC_PREFIX` in front of every topic name (to isolate environments or runs);
 * - `KAFKA_FROM_BEGINNING` (`true`/`false`) for consumers that do not say; by default
 *   `true` unless `NODE_ENV=production`, as the platform's note recommends.
 *
 * Consumers get `clientId` `<key>-consumer` and `groupId` `<key>-group` unless given.
 */
function defineKafkaConfig(definition) {
    const env = definition.env ?? process.env;
    const brokers = listFromEnv(env.KAFKA_BROKERS);
    const prefix = env.KAFKA_TOPIC_PREFIX?.trim() ?? '';
    const fromBeginning = booleanFromEnv(env.KAFKA_FROM_BEGINNING, 'KAFKA_FROM_BEGINNING') ?? env.NODE_ENV !== 'production';
    const topics = Object.fromEntries(Object.entries(definition.topics).map(([name, topic]) => [name, `${prefix}${topic}`]));
    const entries = definition.consumers(topics);
    const consumers = Object.fromEntries(Object.entries(entries).map(([key, entry]) => {
        if (!Array.isArray(entry.topics) || entry.topics.length === 0) {
            throw configError(`consumers.${key}.topics must name at least one topic`);
        }
        const consumer = {
            clientId: `${key}-consumer`,
            groupId: `${key}-group`,
            fromBeginning,
            ...(brokers ? { brokers } : {}),
            ...entry,
        };
        return [key, consumer];
    }));
    const producer = {
        ...(brokers ? { brokers } : {}),
        ...(env.KAFKA_CLIENT_ID?.trim() ? { clientId: env.KAFKA_CLIENT_ID.trim() } : {}),
        ...definition.producer,
    };
    return { producer, consumers, topics };
}
function listFromEnv(value) {
    const list = value
        ?.split(',')
        .map((entry) => entry.trim())
        .filter(Boolean);
    return list && list.length > 0 ? list : undefined;
}
function booleanFromEnv(value, name) {
    if (value === undefined || value.trim() === '')
        return undefined;
    const normalised = value.trim().toLowerCase();
    if (['true', '1', 'yes'].includes(normalised))
        return true;
    if (['false', '0', 'no'].includes(normalised))
        return false;
    throw configError(`${name} must be true or false, got ${JSON.stringify(value)}`);
}
function configError(message) {
    return Object.assign(new Error(message), { code: 'ERR_INVALID_CONFIG' });
}
