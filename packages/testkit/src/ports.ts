export { freePort, freeStablePort } from '@chat/proc';
