import { Module } from '@nestjs/common';
import { AnalyticsConsumerService } from './kafka-consumer-analytics.service';

@Module({
  providers: [AnalyticsConsumerService],
  exports: [AnalyticsConsumerService],
})
export class KafkaConsumerAnalyticsModule {}
