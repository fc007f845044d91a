export { CLUSTER_BUS_OFFSET, freeClusterPorts, freePort, freeStablePort, isPortFree } from './ports.js';
export { sleep, waitFor } from './wait.js';
export { cpuSeconds, rssBytes, childPids } from './proc-stats.js';
export { startChild, stopAll, type Child, type Exit } from './child.js';
export { startRedisServer, waitForPing, type RedisProcess } from './redis.js';
