/** Where a counted view was read, and which movie it is of. */
export interface CountedView {
  movieId: string;
  topic: string;
  partition: number;
  offset: number;
}

/** The view counter's running counts. */
export interface ViewCountSummary {
  /** Views counted: one count record each on `movie-view-counts`. */
  views: number;
  movies: number;
  /** Each movie's running count, as its latest record on `movie-view-counts` says. */
  byMovie: Record<string, number>;
}

/**
 * The view counter's running count per movie, in memory.
 *
 * Each run of views the consumer hands over (a batch) is one transaction, and a run's counts
 * build on those of the runs before it. So a run whose transaction aborted must leave no count
 * behind, or its views would be counted again when the run is handed over anew. The store keeps
 * the last run's counts apart until the next run tells how it ended: the consumer hands a run
 * over again when its transaction aborted, so a run bringing back an offset of the last run means
 * the last run never committed (its counts are dropped); any other run means it committed (its
 * counts are kept). A run whose handler failed is dropped at once (`discardLast`). This relies on
 * `batch` (one handler call per transaction) and `concurrency` 1 (runs one after the other).
 *
 * Limit: the counts live as long as the process. After a restart, or when a rebalance hands a
 * partition of `movie-views` to another instance, the group resumes after its committed offsets
 * but the counts start again from zero. A production counter would first rebuild its state from
 * `movie-view-counts` (each movie's last committed record holds its count: read the topic with
 * `read_committed` up to its end before consuming), or keep it in a database updated in the same
 * way; Kafka Streams does the former with a compacted changelog topic.
 */
export class ViewCountStore {
  /** Counts of the runs known to have committed. */
  private readonly counts = new Map<string, number>();
  /** The last run: its counts and, per partition, the offset after its last view. */
  private last: { counts: Map<string, number>; nextOffsets: Map<string, number> } | undefined;

  /** Counts a run of views, in order; returns each view's running count. */
  countRun(views: readonly CountedView[]): number[] {
    this.settleLast(views);
    const counts = new Map<string, number>();
    const nextOffsets = new Map<string, number>();
    const running = views.map((view) => {
      const count = (counts.get(view.movieId) ?? this.counts.get(view.movieId) ?? 0) + 1;
      counts.set(view.movieId, count);
      const partition = partitionKey(view);
      nextOffsets.set(partition, Math.max(nextOffsets.get(partition) ?? 0, view.offset + 1));
      return count;
    });
    this.last = { counts, nextOffsets };
    return running;
  }

  /** Forgets the last run's counts: its transaction aborts. */
  discardLast(): void {
    this.last = undefined;
  }

  /**
   * The counts so far, the last run's included: its transaction commits as the handler returns,
   * or the run is handled again (giving the same counts).
   */
  summary(): ViewCountSummary {
    const byMovie = Object.fromEntries([...this.counts, ...(this.last?.counts ?? [])]);
    const counts = Object.values(byMovie);
    return { views: counts.reduce((total, count) => total + count, 0), movies: counts.length, byMovie };
  }

  /** Keeps the last run's counts, unless `views` brings back one of its offsets. */
  private settleLast(views: readonly CountedView[]): void {
    const last = this.last;
    if (!last) return;
    this.last = undefined;
    const redelivered = views.some((view) => view.offset < (last.nextOffsets.get(partitionKey(view)) ?? 0));
    if (redelivered) return;
    for (const [movieId, count] of last.counts) this.counts.set(movieId, count);
  }
}

function partitionKey({ topic, partition }: CountedView): string {
  return `${topic}/${partition}`;
}
