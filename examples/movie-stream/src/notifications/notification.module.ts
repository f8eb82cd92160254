import { Module } from '@nestjs/common';
import { KafkaConsumerNotificationModule } from '../modules/kafka/consumer/notification/kafka-consumer-notification.module';
import { NotificationController } from './notification.controller';

@Module({
  imports: [KafkaConsumerNotificationModule],
  controllers: [NotificationController],
})
export class NotificationModule {}
