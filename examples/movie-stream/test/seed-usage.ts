/**
 * The platform design note's usage fragments (MOVIE_STREAM_KAFKA.md, "Usage the app relies on"),
 * written against this app's modules and kafka-napi's types. It is compiled with the app
 * (tsconfig.json) and by seed-usage.test.js, so a type change that breaks the app's usage fails
 * the build. Each `@ts-expect-error` line is a misuse that must keep failing to compile.
 * Never run.
 */
import { Injectable, Module } from '@nestjs/common';
import { KAFKA_CONFIG } from '../src/modules/kafka/config/kafka.config';
import type { EachMessagePayload, MovieEvent } from '../src/modules/kafka/consumer/base/kafka-consumer.interface';
import { BaseKafkaConsumerService } from '../src/modules/kafka/consumer/base/kafka-consumer-base.service';
import { KafkaConsumerIndexModule } from '../src/modules/kafka/consumer/kafka-consumer-index.module';
import { KafkaProducerModule } from '../src/modules/kafka/producer/kafka-producer.module';
import { KafkaProducerService } from '../src/modules/kafka/producer/kafka-producer.service';

// app.module.ts
@Module({ imports: [KafkaProducerModule /* global */, KafkaConsumerIndexModule /* all consumers */] })
export class AppModule {}

// movie.service.ts
@Injectable()
export class MovieService {
  constructor(private readonly kafkaProducer: KafkaProducerService) {}

  async usage(userId: string, movieId: string): Promise<void> {
    await this.kafkaProducer.sendMovieViewEvent(userId, movieId); // 1: ready-made helper
    await this.kafkaProducer.sendMovieEvent('VIEW', userId, movieId, { source: 'web', duration: 120 }); // 2: generic
    await this.kafkaProducer.sendMessage('custom-topic', { customField: 'value' }); // 3: any topic, any payload
    await this.kafkaProducer.sendMovieEvent('LIKE', userId, movieId);
    // Numeric ids are accepted too, as the platform's ids often are.
    await this.kafkaProducer.sendMovieEvent('SHARE', 456, 123);
  }

  async misuse(userId: string, movieId: string): Promise<void> {
    // @ts-expect-error DISLIKE is not a movie event type
    await this.kafkaProducer.sendMovieEvent('DISLIKE', userId, movieId);
    // @ts-expect-error the movieId is missing
    await this.kafkaProducer.sendMovieViewEvent(userId);
    // @ts-expect-error the movieId is missing
    await this.kafkaProducer.sendMovieEvent('LIKE', userId);
    // @ts-expect-error a key is a string or a Buffer
    await this.kafkaProducer.sendMessage('custom-topic', { customField: 'value' }, { key: 42 });
    // @ts-expect-error the config names no such topic
    await this.kafkaProducer.sendMessage(KAFKA_CONFIG.topics.MOVIE_RATINGS, {});
  }
}

// consumer/movie/kafka-consumer-movie.service.ts
@Injectable()
export class MovieConsumerService extends BaseKafkaConsumerService {
  constructor() {
    super(KAFKA_CONFIG.consumers.movie, 'MovieConsumer');
  }

  protected async handleMessage(payload: EachMessagePayload): Promise<void> {
    const event = this.parseMessage<MovieEvent>(payload);
    switch (event.eventType) {
      case 'VIEW':
        /* update view count */ break;
      case 'LIKE':
        /* ... */ break;
      // @ts-expect-error DISLIKE is not a movie event type
      case 'DISLIKE':
        break;
    }
    // @ts-expect-error a MovieEvent has no rating
    this.logger.log(`rated ${event.rating}`);
  }
}

@Injectable()
export class RecommendationConsumerService extends BaseKafkaConsumerService {
  constructor() {
    // @ts-expect-error no consumer is configured under that name (step 3 of adding a consumer)
    super(KAFKA_CONFIG.consumers.recommendation, 'RecommendationConsumer');
  }

  protected async handleMessage(): Promise<void> {}
}

// @ts-expect-error a consumer must implement handleMessage
export class IncompleteConsumerService extends BaseKafkaConsumerService {
  constructor() {
    super(KAFKA_CONFIG.consumers.analytics, 'IncompleteConsumer');
  }
}
