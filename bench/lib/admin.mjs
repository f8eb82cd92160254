// @ts-check
// Topic set-up for the runs, done by the parent process with kafkajs's admin client
// (pure JavaScript, works on Tansu), so no measured client pays for it.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
/** @type {typeof import('kafkajs')} */
const { Kafka, logLevel } = require('kafkajs');

/** @param {string[]} brokers */
export async function connectAdmin(brokers) {
  const admin = new Kafka({ brokers, clientId: 'bench-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  return {
    /**
     * Creates fresh topics with `partitions` partitions and waits for their leaders.
     * @param {string[]} topics
     * @param {number} partitions
     */
    async createTopics(topics, partitions) {
      const created = await admin.createTopics({
        topics: topics.map((topic) => ({ topic, numPartitions: partitions })),
        waitForLeaders: true,
        timeout: 30_000,
      });
      if (!created) throw new Error(`topics already existed: ${topics.join(', ')}`);
    },
    /** @param {string[]} topics */
    async deleteTopics(topics) {
      await admin.deleteTopics({ topics, timeout: 30_000 });
    },
    close: () => admin.disconnect(),
  };
}
