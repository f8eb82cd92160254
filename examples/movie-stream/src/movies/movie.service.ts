import { Injectable } from '@nestjs/common';
import type { RecordMetadata } from 'kafka-napi';
import { KAFKA_CONFIG } from '../modules/kafka/config/kafka.config';
import type { NotificationEvent } from '../modules/kafka/consumer/base/kafka-consumer.interface';
import { MovieConsumerService } from '../modules/kafka/consumer/movie/kafka-consumer-movie.service';
import type { MovieStats, MovieTotals } from '../modules/kafka/consumer/movie/movie-stats.store';
import { KafkaProducerService } from '../modules/kafka/producer/kafka-producer.service';

/** Where a request's event was written, once the cluster acknowledged it. */
export interface Accepted {
  topic: string;
  partition: number;
  offset: number;
}

export interface ViewDetails {
  source?: string;
  /** Seconds watched. */
  duration?: number;
}

/**
 * What users do to movies, published to Kafka (every event keyed by movieId, so one movie's
 * events stay in order), and the counters the movie consumer builds from them.
 */
@Injectable()
export class MovieService {
  constructor(
    private readonly kafkaProducer: KafkaProducerService,
    private readonly movieConsumer: MovieConsumerService,
  ) {}

  /** A view with details goes to movie-events with them; a bare one to movie-views. */
  async view(movieId: string, userId: string, details: ViewDetails = {}): Promise<Accepted> {
    const metadata = withoutUndefined(details);
    const written =
      Object.keys(metadata).length > 0
        ? await this.kafkaProducer.sendMovieEvent('VIEW', userId, movieId, metadata)
        : await this.kafkaProducer.sendMovieViewEvent(userId, movieId);
    return accepted(written);
  }

  async like(movieId: string, userId: string): Promise<Accepted> {
    return accepted(await this.kafkaProducer.sendMovieEvent('LIKE', userId, movieId));
  }

  /** Publishes the comment and, for the notification consumer, a notification about it. */
  async comment(movieId: string, userId: string, text: string): Promise<Accepted> {
    const notification: NotificationEvent = {
      type: 'NEW_COMMENT',
      movieId,
      userId,
      message: `${userId} commented: ${text}`,
      timestamp: Date.now(),
    };
    const [written] = await Promise.all([
      this.kafkaProducer.sendMovieEvent('COMMENT', userId, movieId, { text }),
      this.kafkaProducer.sendMessage(KAFKA_CONFIG.topics.NOTIFICATION_EVENTS, notification, { key: movieId }),
    ]);
    return accepted(written);
  }

  async share(movieId: string, userId: string, channel?: string): Promise<Accepted> {
    const metadata = channel === undefined ? undefined : { channel };
    return accepted(await this.kafkaProducer.sendMovieEvent('SHARE', userId, movieId, metadata));
  }

  stats(movieId: string): MovieStats {
    return this.movieConsumer.movieStats(movieId);
  }

  top(limit: number): MovieStats[] {
    return this.movieConsumer.topMovies(limit);
  }

  summary(): MovieTotals {
    return this.movieConsumer.summary();
  }
}

function accepted({ topic, partition, offset }: RecordMetadata): Accepted {
  return { topic, partition, offset };
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, entry]) => entry !== undefined)) as Partial<T>;
}
