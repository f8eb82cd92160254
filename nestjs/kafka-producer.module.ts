import { type DynamicModule, Global, type InjectionToken, Module, type ModuleMetadata } from '@nestjs/common';
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

/**
 * The global producer module: import it once (in `AppModule`) and inject
 * `KafkaProducerService` anywhere. Imported as it is, it takes its settings from
 * the environment (`KAFKA_BROKERS`, `KAFKA_CLIENT_ID`, ...).
 */
@Global()
@Module({
  providers: [{ provide: KAFKA_PRODUCER_OPTIONS, useValue: {} }, KafkaProducerService],
  exports: [KafkaProducerService],
})
export class KafkaProducerModule {
  /** With options known up front (over the environment's). */
  static forRoot(options: KafkaProducerModuleOptions = {}): DynamicModule {
    return {
      module: KafkaProducerModule,
      global: true,
      providers: [{ provide: KAFKA_PRODUCER_OPTIONS, useValue: options }, KafkaProducerService],
      exports: [KafkaProducerService],
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
        KafkaProducerService,
      ],
      exports: [KafkaProducerService],
    };
  }
}
