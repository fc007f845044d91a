export * from './codes.js';
export * from './frames.js';
export * from './ids.js';
export * from './names.js';
export * from './parse.js';
export * from './encode.js';
