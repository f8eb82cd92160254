import { Controller, Get, Header } from '@nestjs/common';
import { PROMETHEUS_CONTENT_TYPE, prometheusMetrics } from 'kafka-napi';

/** `GET /metrics`: every producer and consumer of the process, for Prometheus to scrape. */
@Controller('metrics')
export class MetricsController {
  @Get()
  @Header('Content-Type', PROMETHEUS_CONTENT_TYPE)
  @Header('Cache-Control', 'no-store')
  scrape(): string {
    return prometheusMetrics();
  }
}
