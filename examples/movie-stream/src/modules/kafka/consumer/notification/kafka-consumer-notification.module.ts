import { Module } from '@nestjs/common';
import { NotificationConsumerService } from './kafka-consumer-notification.service';

/** Step 2 of adding a consumer: a module providing and exporting it. */
@Module({
  providers: [NotificationConsumerService],
  exports: [NotificationConsumerService],
})
export class KafkaConsumerNotificationModule {}
