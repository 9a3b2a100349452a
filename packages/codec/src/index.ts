export * from './errors.js';
export * from './bits.js';
export * from './float16.js';
export * from './crc32c.js';
export * from './distribution.js';
export { GRID_UNITS } from './grid.js';
export * from './frame.js';
export * from './chunk.js';
