// Services and load balancing: the pure model (addresses, endpoints, balancing settings,
// weights, the adaptive controller). No I/O here; the data plane renders what this decides.

export * from './allocate.js';
export * from './endpoints.js';
export * from './config.js';
export * from './weights.js';
export * as adaptive from './adaptive.js';
export { lintServices } from './lint.js';
