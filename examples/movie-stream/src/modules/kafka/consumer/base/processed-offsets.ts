import type { EachMessagePayload } from './kafka-consumer.interface';

/**
 * Makes a consumer's counting idempotent under at-least-once delivery. After a rebalance or a
 * restart of a member, messages since the last commit are delivered again; remembering the
 * highest offset already processed lets the handler ignore them.
 *
 * Offsets are tracked per topic, partition AND key: with `concurrency` above 1 the addon handles
 * different keys of one partition in parallel (each key in order), so a partition's offsets may
 * finish out of order, while one key's never do. Messages without a key share one entry per
 * partition, which is right as long as they are consumed with `concurrency: 1` or all keyed.
 */
export class ProcessedOffsets {
  private readonly highest = new Map<string, number>();

  /** Whether this message, or a later one of its key, was already processed. */
  isDuplicate(payload: EachMessagePayload): boolean {
    const processed = this.highest.get(trackingKey(payload));
    return processed !== undefined && payload.offset <= processed;
  }

  /** Records the message as processed; call it once its effects are applied. */
  markProcessed(payload: EachMessagePayload): void {
    const key = trackingKey(payload);
    const processed = this.highest.get(key);
    if (processed === undefined || payload.offset > processed) this.highest.set(key, payload.offset);
  }
}

function trackingKey({ topic, partition, key }: EachMessagePayload): string {
  return JSON.stringify([topic, partition, key ?? null]);
}
