/**
 * The app's single producer: kafka-napi's Nest service (sendMovieViewEvent, sendMovieEvent,
 * sendMessage, send, sendBatch, flush...). It connects when the app starts, retrying in the
 * background while Kafka is unreachable, and flushes and disconnects on shutdown.
 */
export { KafkaProducerService } from 'kafka-napi/nestjs';
