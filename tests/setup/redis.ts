import { redisForTests } from '@chat/testkit';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string;
  }
}

/** One Redis for the integration run: REDIS_URL, else a private redis-server, else a container. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await redisForTests();
  project.provide('redisUrl', redis.url);
  return () => redis.close();
}
