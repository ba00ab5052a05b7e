// Everything the web client needs to type its calls.
export * from './common.js';
export * from './auth.js';
export * from './users.js';
export * from './tokens.js';
export * from './audit.js';
export * from './health.js';
export * from './projects.js';
export * from './rating.js';
export * from './quality.js';
export * from './datasets.js';
export * from './rounds.js';
export * from './engine.js';
export * from './promotion.js';
export * from './generations.js';
export * from './endpoints.js';
