import { Module } from '@nestjs/common';
import { KafkaConsumerAnalyticsModule } from '../modules/kafka/consumer/analytics/kafka-consumer-analytics.module';
import { KafkaConsumerViewCounterModule } from '../modules/kafka/consumer/view-counter/kafka-consumer-view-counter.module';
import { AnalyticsController } from './analytics.controller';
import { AnalyticsService } from './analytics.service';

@Module({
  imports: [KafkaConsumerAnalyticsModule, KafkaConsumerViewCounterModule],
  controllers: [AnalyticsController],
  providers: [AnalyticsService],
})
export class AnalyticsModule {}
