import { Injectable } from '@nestjs/common';
import type { AnalyticsEvent } from 'kafka-napi';
import { KAFKA_CONFIG } from '../modules/kafka/config/kafka.config';
import {
  AnalyticsConsumerService,
  type AnalyticsSummary,
} from '../modules/kafka/consumer/analytics/kafka-consumer-analytics.service';
import { ViewCounterConsumerService } from '../modules/kafka/consumer/view-counter/kafka-consumer-view-counter.service';
import type { ViewCountSummary } from '../modules/kafka/consumer/view-counter/view-count.store';
import { KafkaProducerService } from '../modules/kafka/producer/kafka-producer.service';
import type { Accepted } from '../movies/movie.service';

@Injectable()
export class AnalyticsService {
  constructor(
    private readonly kafkaProducer: KafkaProducerService,
    private readonly analyticsConsumer: AnalyticsConsumerService,
    private readonly viewCounter: ViewCounterConsumerService,
  ) {}

  /** Publishes the event to user-actions, keyed by session so a session's events stay in order. */
  async track(event: AnalyticsEvent): Promise<Accepted> {
    const { topic, partition, offset } = await this.kafkaProducer.sendMessage(KAFKA_CONFIG.topics.USER_ACTIONS, event, {
      key: event.sessionId,
    });
    return { topic, partition, offset };
  }

  summary(): AnalyticsSummary {
    return this.analyticsConsumer.summary();
  }

  /** The view counter's running counts (the exactly-once consumer writing movie-view-counts). */
  viewCounts(): ViewCountSummary {
    return this.viewCounter.summary();
  }
}
