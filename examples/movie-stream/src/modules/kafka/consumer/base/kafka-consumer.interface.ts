/**
 * The types the consumers work with. The platform's events and the message payload come
 * from kafka-napi; this file keeps the app's import paths and adds the app's own event.
 */
export type { AnalyticsEvent, AnalyticsEventType, MovieEvent, MovieEventType, MovieViewEvent } from 'kafka-napi';
export type { EachMessagePayload, KafkaConsumerConfig, KafkaConsumerState } from 'kafka-napi/nestjs';

export type NotificationType = 'NEW_COMMENT';

/** A record on `movie-view-counts`, keyed by movieId: the movie's running view count. */
export interface MovieViewCount {
  movieId: string;
  /** Views of the movie so far, this one included. */
  views: number;
  /** The view's time, in milliseconds since the Unix epoch. */
  at: number;
}

/** An event on `notification-events`, keyed by movieId. */
export interface NotificationEvent {
  type: NotificationType;
  movieId: string;
  /** Who caused it. */
  userId: string;
  message: string;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
}

/**
 * `NotificationEvent` as a JSON Schema: the notification consumer has the addon validate
 * messages in Rust, so a malformed one is dead-lettered before it reaches the handler.
 */
export const NOTIFICATION_EVENT_SCHEMA = {
  type: 'object',
  required: ['type', 'movieId', 'userId', 'message', 'timestamp'],
  properties: {
    type: { enum: ['NEW_COMMENT'] },
    movieId: { type: 'string', minLength: 1 },
    userId: { type: 'string', minLength: 1 },
    message: { type: 'string' },
    timestamp: { type: 'integer' },
  },
} as const;
