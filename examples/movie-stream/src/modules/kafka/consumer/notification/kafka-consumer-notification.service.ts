import { Injectable } from '@nestjs/common';
import { KAFKA_CONFIG } from '../../config/kafka.config';
import type { EachMessagePayload, NotificationEvent, NotificationType } from '../base/kafka-consumer.interface';
import { BaseKafkaConsumerService } from '../base/kafka-consumer-base.service';
import { ProcessedOffsets } from '../base/processed-offsets';

/** How many notifications `latest` keeps. */
const LATEST_KEPT = 20;

export interface NotificationSummary {
  notifications: number;
  byType: Record<NotificationType, number>;
  /** The most recent first. */
  latest: NotificationEvent[];
}

/**
 * Step 1 of adding a consumer: a service extending the base class. This one would notify a
 * movie's followers; the example keeps counts and the latest notifications.
 */
@Injectable()
export class NotificationConsumerService extends BaseKafkaConsumerService {
  private readonly processed = new ProcessedOffsets();
  private readonly byType: Record<NotificationType, number> = { NEW_COMMENT: 0 };
  private readonly latest: NotificationEvent[] = [];
  private notifications = 0;

  constructor() {
    super(KAFKA_CONFIG.consumers.notification, 'NotificationConsumer');
  }

  protected async handleMessage(payload: EachMessagePayload): Promise<void> {
    if (this.processed.isDuplicate(payload)) return;
    const notification = this.parseMessage<NotificationEvent>(payload);
    this.logger.debug(`Processing ${notification.type} notification for movie: ${notification.movieId}`);
    this.byType[notification.type] += 1;
    this.notifications += 1;
    this.latest.unshift(notification);
    this.latest.length = Math.min(this.latest.length, LATEST_KEPT);
    this.processed.markProcessed(payload);
  }

  summary(): NotificationSummary {
    return { notifications: this.notifications, byType: { ...this.byType }, latest: [...this.latest] };
  }
}
