import { Body, Controller, Get, HttpCode, HttpStatus, Param, Post, Query } from '@nestjs/common';
import {
  integerQuery,
  optionalNonNegativeNumber,
  optionalText,
  requireBody,
  requireId,
  requireText,
} from '../common/request-validation';
import type { MovieStats, MovieTotals } from '../modules/kafka/consumer/movie/movie-stats.store';
import { type Accepted, MovieService } from './movie.service';

/** The longest `GET /movies/top` list. */
const MAX_TOP = 1000;

/**
 * Interactions are answered 202 once Kafka has acknowledged the event: counting happens
 * asynchronously, in the movie consumer.
 */
@Controller('movies')
export class MovieController {
  constructor(private readonly movies: MovieService) {}

  @Post(':id/view')
  @HttpCode(HttpStatus.ACCEPTED)
  view(@Param('id') id: string, @Body() body: unknown): Promise<Accepted> {
    const request = requireBody(body);
    return this.movies.view(requireId(id, 'movie id'), requireId(request.userId, 'userId'), {
      source: optionalText(request.source, 'source', 32),
      duration: optionalNonNegativeNumber(request.duration, 'duration'),
    });
  }

  @Post(':id/like')
  @HttpCode(HttpStatus.ACCEPTED)
  like(@Param('id') id: string, @Body() body: unknown): Promise<Accepted> {
    return this.movies.like(requireId(id, 'movie id'), requireId(requireBody(body).userId, 'userId'));
  }

  @Post(':id/comment')
  @HttpCode(HttpStatus.ACCEPTED)
  comment(@Param('id') id: string, @Body() body: unknown): Promise<Accepted> {
    const request = requireBody(body);
    return this.movies.comment(
      requireId(id, 'movie id'),
      requireId(request.userId, 'userId'),
      requireText(request.text, 'text', 2000),
    );
  }

  @Post(':id/share')
  @HttpCode(HttpStatus.ACCEPTED)
  share(@Param('id') id: string, @Body() body: unknown): Promise<Accepted> {
    const request = requireBody(body);
    return this.movies.share(
      requireId(id, 'movie id'),
      requireId(request.userId, 'userId'),
      optionalText(request.channel, 'channel', 32),
    );
  }

  /** The most viewed movies so far (`limit`, default 10). */
  @Get('top')
  top(@Query('limit') limit?: string): MovieStats[] {
    return this.movies.top(integerQuery(limit, 'limit', 1, MAX_TOP, 10));
  }

  /** Every movie's counters added up. */
  @Get('summary')
  summary(): MovieTotals {
    return this.movies.summary();
  }

  @Get(':id/stats')
  stats(@Param('id') id: string): MovieStats {
    return this.movies.stats(requireId(id, 'movie id'));
  }
}
