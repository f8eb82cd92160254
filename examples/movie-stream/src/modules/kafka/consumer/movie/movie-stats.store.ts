/** What the audience did to one movie, as counted from the topics. */
export interface MovieStats {
  movieId: string;
  views: number;
  likes: number;
  comments: number;
  shares: number;
}

/** Every movie's counters added up. */
export interface MovieTotals {
  movies: number;
  views: number;
  likes: number;
  comments: number;
  shares: number;
  /** views + likes + comments + shares */
  events: number;
}

export type MovieCounter = Exclude<keyof MovieStats, 'movieId'>;

/** Per-movie counters kept in memory by the movie consumer (a real app would use a database). */
export class MovieStatsStore {
  private readonly byMovie = new Map<string, MovieStats>();
  private readonly totals: MovieTotals = { movies: 0, views: 0, likes: 0, comments: 0, shares: 0, events: 0 };

  increment(movieId: string, counter: MovieCounter): void {
    let stats = this.byMovie.get(movieId);
    if (!stats) {
      stats = emptyStats(movieId);
      this.byMovie.set(movieId, stats);
      this.totals.movies += 1;
    }
    stats[counter] += 1;
    this.totals[counter] += 1;
    this.totals.events += 1;
  }

  /** A movie's counters; all zero for a movie nobody has interacted with yet. */
  get(movieId: string): MovieStats {
    const stats = this.byMovie.get(movieId);
    return stats ? { ...stats } : emptyStats(movieId);
  }

  /** The most viewed movies; ties go to the most liked, then by id. */
  top(limit: number): MovieStats[] {
    return [...this.byMovie.values()]
      .sort(
        (a, b) =>
          b.views - a.views || b.likes - a.likes || (a.movieId < b.movieId ? -1 : a.movieId > b.movieId ? 1 : 0),
      )
      .slice(0, limit)
      .map((stats) => ({ ...stats }));
  }

  summary(): MovieTotals {
    return { ...this.totals };
  }
}

function emptyStats(movieId: string): MovieStats {
  return { movieId, views: 0, likes: 0, comments: 0, shares: 0 };
}
