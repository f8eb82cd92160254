import { Injectable } from '@nestjs/common';
import type { KafkaTransaction } from 'kafka-napi';
import { KAFKA_CONFIG } from '../../config/kafka.config';
import type { EachMessagePayload, MovieViewCount, MovieViewEvent } from '../base/kafka-consumer.interface';
import { BaseKafkaConsumerService } from '../base/kafka-consumer-base.service';
import { type CountedView, ViewCountStore, type ViewCountSummary } from './view-count.store';

/**
 * Consume-transform-produce, exactly once: reads `movie-views` (in a group of its own, beside the
 * movie consumer) and writes, for each view, the movie's running count
 * `{ movieId, views, at }` to `movie-view-counts`, keyed by movieId.
 *
 * Its config has `exactlyOnce` and `batch`: each batch of views is handled in one transaction of
 * the consumer's own transactional producer, which also commits the batch's offsets. The count
 * records and the offsets are thus committed together or not at all: after a crash at any point,
 * `read_committed` readers of `movie-view-counts` see one record per view, never a view counted
 * twice. (Counts kept in memory have limits: see `ViewCountStore`.)
 */
@Injectable()
export class ViewCounterConsumerService extends BaseKafkaConsumerService {
  private readonly store = new ViewCountStore();

  constructor() {
    super(KAFKA_CONFIG.consumers.viewCounter, 'ViewCounterConsumer');
  }

  /**
   * With `batch` in its config the consumer is handed a whole batch (an array) at a time; the
   * base class types `payload` as one message.
   */
  protected async handleMessage(payload: EachMessagePayload, tx?: KafkaTransaction): Promise<void> {
    if (!tx) throw new Error('the view counter needs exactlyOnce in its config');
    const batch = payload as unknown as EachMessagePayload[];
    // Validated in Rust against the MovieViewEvent schema.
    const events = batch.map((message) => this.parseMessage<MovieViewEvent>(message));
    const views: CountedView[] = batch.map(({ topic, partition, offset }, index) => ({
      topic,
      partition,
      offset,
      movieId: events[index].movieId,
    }));
    const running = this.store.countRun(views);
    const counts = events.map(
      (event, index): MovieViewCount => ({ movieId: event.movieId, views: running[index], at: event.timestamp }),
    );
    try {
      // In the transaction: visible to read_committed readers once the batch's offsets commit with it.
      await tx.send({
        topic: KAFKA_CONFIG.topics.MOVIE_VIEW_COUNTS,
        messages: counts.map((count) => ({ key: count.movieId, value: count })),
      });
    } catch (error) {
      this.store.discardLast();
      throw error;
    }
    this.logger.debug(`Counted ${batch.length} views of ${new Set(views.map((view) => view.movieId)).size} movies`);
  }

  summary(): ViewCountSummary {
    return this.store.summary();
  }
}
