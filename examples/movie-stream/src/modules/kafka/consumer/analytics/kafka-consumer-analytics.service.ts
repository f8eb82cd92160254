import { Injectable } from '@nestjs/common';
import { KAFKA_CONFIG } from '../../config/kafka.config';
import type { AnalyticsEvent, AnalyticsEventType, EachMessagePayload } from '../base/kafka-consumer.interface';
import { BaseKafkaConsumerService } from '../base/kafka-consumer-base.service';
import { ProcessedOffsets } from '../base/processed-offsets';

export interface AnalyticsSummary {
  events: number;
  byEventType: Record<AnalyticsEventType, number>;
  distinctSessions: number;
  /** Events may be anonymous: only those with a userId count here. */
  distinctUsers: number;
}

/** Aggregates `user-actions`: events per type, distinct sessions and users. */
@Injectable()
export class AnalyticsConsumerService extends BaseKafkaConsumerService {
  private readonly processed = new ProcessedOffsets();
  private readonly byEventType: Record<AnalyticsEventType, number> = {
    PAGE_VIEW: 0,
    USER_ACTION: 0,
    MOVIE_VIEW: 0,
    SEARCH: 0,
  };
  private readonly sessions = new Set<string>();
  private readonly users = new Set<string>();
  private events = 0;

  constructor() {
    super(KAFKA_CONFIG.consumers.analytics, 'AnalyticsConsumer');
  }

  protected async handleMessage(payload: EachMessagePayload): Promise<void> {
    if (this.processed.isDuplicate(payload)) return;
    const event = this.parseMessage<AnalyticsEvent>(payload);
    this.logger.debug(`Processing ${event.eventType} event of session: ${event.sessionId}`);
    this.byEventType[event.eventType] += 1;
    this.sessions.add(event.sessionId);
    if (event.userId) this.users.add(event.userId);
    this.events += 1;
    this.processed.markProcessed(payload);
  }

  summary(): AnalyticsSummary {
    return {
      events: this.events,
      byEventType: { ...this.byEventType },
      distinctSessions: this.sessions.size,
      distinctUsers: this.users.size,
    };
  }
}
