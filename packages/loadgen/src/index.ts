export { runLoad, planWorkers, type LoadOptions, type LoadReport, type StepResult, type Scenario } from './coordinator.js';
export { runRooms, planRooms, describeRooms, type RoomsOptions, type RoomsReport, type RoomsScenario } from './rooms.js';
export { parseInfo, sampleRedis, type RedisSample } from './redis-info.js';
export { Histogram } from './histogram.js';
export { makeText, readHeader, type Header } from './payload.js';
export { runStorm, describeStorm, type StormOptions, type StormReport } from './storm.js';
export {
  runConversations, describeConversations, planConversations, checkCounts, directPairs, groupMembers,
  type ConversationsOptions, type ConversationsReport, type CountCheck,
} from './conversations.js';
