import { Module } from '@nestjs/common';
import { MovieConsumerService } from './kafka-consumer-movie.service';

@Module({
  providers: [MovieConsumerService],
  exports: [MovieConsumerService],
})
export class KafkaConsumerMovieModule {}
