import { Module } from '@nestjs/common';
import { ViewCounterConsumerService } from './kafka-consumer-view-counter.service';

@Module({
  providers: [ViewCounterConsumerService],
  exports: [ViewCounterConsumerService],
})
export class KafkaConsumerViewCounterModule {}
