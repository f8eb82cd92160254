import { Body, Controller, Get, HttpCode, HttpStatus, Post } from '@nestjs/common';
import type { AnalyticsEventType } from 'kafka-napi';
import { oneOf, optionalId, optionalObject, requireBody, requireId } from '../common/request-validation';
import type { AnalyticsSummary } from '../modules/kafka/consumer/analytics/kafka-consumer-analytics.service';
import type { ViewCountSummary } from '../modules/kafka/consumer/view-counter/view-count.store';
import type { Accepted } from '../movies/movie.service';
import { AnalyticsService } from './analytics.service';

const EVENT_TYPES: readonly AnalyticsEventType[] = ['PAGE_VIEW', 'USER_ACTION', 'MOVIE_VIEW', 'SEARCH'];

@Controller('analytics')
export class AnalyticsController {
  constructor(private readonly analytics: AnalyticsService) {}

  /** Body: `{ eventType, sessionId, userId?, data? }`; the server stamps the time. */
  @Post('events')
  @HttpCode(HttpStatus.ACCEPTED)
  track(@Body() body: unknown): Promise<Accepted> {
    const request = requireBody(body);
    const userId = optionalId(request.userId, 'userId');
    return this.analytics.track({
      eventType: oneOf(request.eventType, 'eventType', EVENT_TYPES),
      sessionId: requireId(request.sessionId, 'sessionId'),
      ...(userId === undefined ? {} : { userId }),
      timestamp: Date.now(),
      data: optionalObject(request.data, 'data') ?? {},
    });
  }

  @Get('summary')
  summary(): AnalyticsSummary {
    return this.analytics.summary();
  }

  /** Views of `movie-views` per movie, as the exactly-once view counter wrote them to `movie-view-counts`. */
  @Get('view-counts')
  viewCounts(): ViewCountSummary {
    return this.analytics.viewCounts();
  }
}
