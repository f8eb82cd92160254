import { ConfigModule, ConfigService } from '@nestjs/config';
import { KafkaProducerModule as KafkaNapiProducerModule, type KafkaProducerModuleOptions } from 'kafka-napi/nestjs';
import { kafkaConfig, type MovieStreamKafkaConfig, TOPIC_PARTITIONS } from '../config/kafka.config';

/**
 * The global producer module, configured from `ConfigService`: import it once, in AppModule,
 * and inject `KafkaProducerService` anywhere. It creates the app's topics at start-up when they
 * do not exist, so consumers never wait for a producer to auto-create them.
 */
export const KafkaProducerModule = KafkaNapiProducerModule.forRootAsync({
  imports: [ConfigModule.forFeature(kafkaConfig)],
  inject: [ConfigService],
  useFactory: (config: ConfigService): KafkaProducerModuleOptions => {
    const kafka = config.getOrThrow<MovieStreamKafkaConfig>('kafka');
    return {
      ...kafka.producer,
      topics: Object.values(kafka.topics).map((name) => ({ name, partitions: TOPIC_PARTITIONS })),
      // Shutdown waits this long for unacknowledged messages: bounded, so a lost cluster cannot hang it.
      shutdownTimeoutMs: 10_000,
    };
  },
});
