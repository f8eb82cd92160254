import { Module } from '@nestjs/common';
import { KafkaConsumerIndexModule } from '../modules/kafka/consumer/kafka-consumer-index.module';
import { HealthController } from './health.controller';

@Module({
  imports: [KafkaConsumerIndexModule],
  controllers: [HealthController],
})
export class HealthModule {}
