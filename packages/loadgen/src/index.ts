export { runLoad, planWorkers, type LoadOptions, type LoadReport, type StepResult, type Scenario } from './coordinator.js';
export { Histogram } from './histogram.js';
export { makeText, readHeader, type Header } from './payload.js';
export { runStorm, describeStorm, type StormOptions, type StormReport } from './storm.js';
