import { type DynamicModule, Global, type InjectionToken, Module, type ModuleMetadata } from '@nestjs/common';
import { KafkaHealthIndicator } from './kafka-health.indicator';
import {
  KAFKA_PRODUCER_OPTIONS,
  type KafkaProducerModuleOptions,
  KafkaProducerService,
} from './kafka-producer.service';

/** Options of `KafkaProducerModule.forRootAsync`, e.g. from `ConfigService`. */
export interface KafkaProducerModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  inject?: InjectionToken[];
  useFactory: (...args: any[]) => KafkaProducerModuleOptions | Promise<KafkaProducerModuleOptions>;
}

/** What the module provides, whichever way it is imported. */
const PROVIDED = [KafkaProducerService, KafkaHealthIndicator];

/**
 * The global producer module: import it once (in `AppModule`) and inject
 * `KafkaProducerService` (and `KafkaHealthIndicator`) anywhere. Imported as it is,
 * it takes its settings from the environment (`KAFKA_BROKERS`, `KAFKA_CLIENT_ID`, ...).
 */
@Global()
@Module({
  providers: [{ provide: KAFKA_PRODUCER_OPTIONS, useValue: {} }, ...PROVIDED],
  exports: PROVIDED,
})
export class KafkaProducerModule {
  /** With options known up front (over the environment's). */
  static forRoot(options: KafkaProducerModuleOptions = {}): DynamicModule {
    return {
      module: KafkaProducerModule,
      global: true,
      providers: [{ provide: KAFKA_PRODUCER_OPTIONS, useValue: options }, ...PROVIDED],
      exports: PROVIDED,
    };
  }

  /** With options computed by a factory, e.g. `inject: [ConfigService]`. */
  static forRootAsync(options: KafkaProducerModuleAsyncOptions): DynamicModule {
    return {
      module: KafkaProducerModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        { provide: KAFKA_PRODUCER_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] },
        ...PROVIDED,
      ],
      exports: PROVIDED,
    };
  }
}
