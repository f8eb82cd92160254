import { Injectable } from '@nestjs/common';
import { KAFKA_CONFIG } from '../../config/kafka.config';
import type { EachMessagePayload, MovieEvent } from '../base/kafka-consumer.interface';
import { BaseKafkaConsumerService } from '../base/kafka-consumer-base.service';
import { ProcessedOffsets } from '../base/processed-offsets';
import { type MovieStats, MovieStatsStore, type MovieTotals } from './movie-stats.store';

/** Counts views, likes, comments and shares per movie from `movie-events` and `movie-views`. */
@Injectable()
export class MovieConsumerService extends BaseKafkaConsumerService {
  private readonly store = new MovieStatsStore();
  private readonly processed = new ProcessedOffsets();

  constructor() {
    super(KAFKA_CONFIG.consumers.movie, 'MovieConsumer');
  }

  protected async handleMessage(payload: EachMessagePayload): Promise<void> {
    if (this.processed.isDuplicate(payload)) {
      this.logger.debug(`Skipping redelivered ${payload.topic}[${payload.partition}]@${payload.offset}`);
      return;
    }
    // Validated in Rust against the MovieEvent schema (a movie-views event is a VIEW without metadata).
    const event = this.parseMessage<MovieEvent>(payload);
    this.logger.debug(`Processing ${event.eventType} event for movie: ${event.movieId} by user: ${event.userId}`);
    switch (event.eventType) {
      case 'VIEW':
        this.store.increment(event.movieId, 'views');
        break;
      case 'LIKE':
        this.store.increment(event.movieId, 'likes');
        break;
      case 'COMMENT':
        this.store.increment(event.movieId, 'comments');
        break;
      case 'SHARE':
        this.store.increment(event.movieId, 'shares');
        break;
    }
    this.processed.markProcessed(payload);
  }

  movieStats(movieId: string): MovieStats {
    return this.store.get(movieId);
  }

  topMovies(limit: number): MovieStats[] {
    return this.store.top(limit);
  }

  summary(): MovieTotals {
    return this.store.summary();
  }
}
