import { type DynamicModule, type InjectionToken, type ModuleMetadata } from '@nestjs/common';
import { type KafkaProducerModuleOptions } from './kafka-producer.service';
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
export declare class KafkaProducerModule {
    /** With options known up front (over the environment's). */
    static forRoot(options?: KafkaProducerModuleOptions): DynamicModule;
    /** With options computed by a factory, e.g. `inject: [ConfigService]`. */
    static forRootAsync(options: KafkaProducerModuleAsyncOptions): DynamicModule;
}
