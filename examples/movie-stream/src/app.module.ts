import { Module } from '@nestjs/common';
import { ConfigModule } from '@nestjs/config';
import { AnalyticsModule } from './analytics/analytics.module';
import { HealthModule } from './health/health.module';
import { MetricsModule } from './metrics/metrics.module';
import { KafkaConsumerIndexModule } from './modules/kafka/consumer/kafka-consumer-index.module';
import { KafkaProducerModule } from './modules/kafka/producer/kafka-producer.module';
import { MovieModule } from './movies/movie.module';
import { NotificationModule } from './notifications/notification.module';

@Module({
  imports: [
    // Settings come from the environment only; KAFKA_CONFIG has already read it.
    ConfigModule.forRoot({ isGlobal: true, ignoreEnvFile: true }),
    KafkaProducerModule, // global: one producer for the whole app
    KafkaConsumerIndexModule, // every consumer, started with the app
    MovieModule,
    AnalyticsModule,
    NotificationModule,
    HealthModule,
    MetricsModule,
  ],
})
export class AppModule {}
