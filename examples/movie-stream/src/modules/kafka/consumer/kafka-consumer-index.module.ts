import { Module } from '@nestjs/common';
import { KafkaConsumerAnalyticsModule } from './analytics/kafka-consumer-analytics.module';
import { KafkaConsumerMovieModule } from './movie/kafka-consumer-movie.module';
import { KafkaConsumerNotificationModule } from './notification/kafka-consumer-notification.module';
import { KafkaConsumerViewCounterModule } from './view-counter/kafka-consumer-view-counter.module';

/**
 * Every consumer of the app: importing this module starts them all. Step 4 of adding a
 * consumer: list its module in both `imports` and `exports`.
 */
@Module({
  imports: [
    KafkaConsumerMovieModule,
    KafkaConsumerAnalyticsModule,
    KafkaConsumerNotificationModule,
    KafkaConsumerViewCounterModule,
  ],
  exports: [
    KafkaConsumerMovieModule,
    KafkaConsumerAnalyticsModule,
    KafkaConsumerNotificationModule,
    KafkaConsumerViewCounterModule,
  ],
})
export class KafkaConsumerIndexModule {}
