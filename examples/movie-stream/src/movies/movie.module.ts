import { Module } from '@nestjs/common';
import { KafkaConsumerMovieModule } from '../modules/kafka/consumer/movie/kafka-consumer-movie.module';
import { MovieController } from './movie.controller';
import { MovieService } from './movie.service';

@Module({
  imports: [KafkaConsumerMovieModule],
  controllers: [MovieController],
  providers: [MovieService],
})
export class MovieModule {}
