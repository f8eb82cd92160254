import { Controller, Get, ServiceUnavailableException } from '@nestjs/common';
import { AnalyticsConsumerService } from '../modules/kafka/consumer/analytics/kafka-consumer-analytics.service';
import type { ConsumerHealth } from '../modules/kafka/consumer/base/kafka-consumer.interface';
import { MovieConsumerService } from '../modules/kafka/consumer/movie/kafka-consumer-movie.service';
import { NotificationConsumerService } from '../modules/kafka/consumer/notification/kafka-consumer-notification.service';
import { KafkaProducerService } from '../modules/kafka/producer/kafka-producer.service';

export interface HealthReport {
  status: 'ok' | 'unavailable';
  producer: { connected: boolean };
  consumers: Record<string, ConsumerHealth>;
}

/** 200 when the producer is connected and every consumer is running; 503, with the same report, otherwise. */
@Controller('health')
export class HealthController {
  constructor(
    private readonly kafkaProducer: KafkaProducerService,
    private readonly movieConsumer: MovieConsumerService,
    private readonly analyticsConsumer: AnalyticsConsumerService,
    private readonly notificationConsumer: NotificationConsumerService,
  ) {}

  @Get()
  check(): HealthReport {
    const consumers = {
      movie: this.movieConsumer,
      analytics: this.analyticsConsumer,
      notification: this.notificationConsumer,
    };
    const report: HealthReport = {
      status: 'ok',
      producer: { connected: this.kafkaProducer.isConnected },
      consumers: Object.fromEntries(
        Object.entries(consumers).map(([name, consumer]) => [
          name,
          consumer.error === undefined ? { state: consumer.state } : { state: consumer.state, error: consumer.error },
        ]),
      ),
    };
    const healthy =
      report.producer.connected && Object.values(report.consumers).every((consumer) => consumer.state === 'running');
    if (healthy) return report;
    throw new ServiceUnavailableException({ ...report, status: 'unavailable' });
  }
}
