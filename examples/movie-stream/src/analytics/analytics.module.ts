import { Module } from '@nestjs/common';
import { KafkaConsumerAnalyticsModule } from '../modules/kafka/consumer/analytics/kafka-consumer-analytics.module';
import { AnalyticsController } from './analytics.controller';
import { AnalyticsService } from './analytics.service';

@Module({
  imports: [KafkaConsumerAnalyticsModule],
  controllers: [AnalyticsController],
  providers: [AnalyticsService],
})
export class AnalyticsModule {}
