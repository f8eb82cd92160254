import { Controller, Get } from '@nestjs/common';
import {
  NotificationConsumerService,
  type NotificationSummary,
} from '../modules/kafka/consumer/notification/kafka-consumer-notification.service';

@Controller('notifications')
export class NotificationController {
  constructor(private readonly notificationConsumer: NotificationConsumerService) {}

  /** Counts and the latest notifications, as the notification consumer saw them. */
  @Get('summary')
  summary(): NotificationSummary {
    return this.notificationConsumer.summary();
  }
}
