import { Controller, Get } from '@nestjs/common';
import { HealthCheck, type HealthCheckResult, HealthCheckService } from '@nestjs/terminus';
import { KafkaHealthIndicator } from 'kafka-napi/nestjs';

/**
 * Terminus' health check over kafka-napi's indicator: 200 with `status: 'ok'` while the producer
 * reaches a broker and every consumer is running and reaches one; otherwise 503 with
 * `status: 'error'`, the failing parts (and why) under `error`, and everything under `details`.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly kafka: KafkaHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check(): Promise<HealthCheckResult> {
    return this.health.check([
      () => this.kafka.checkProducer('kafka-producer'),
      () => this.kafka.checkConsumers('kafka-consumers'),
    ]);
  }
}
