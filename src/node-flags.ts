// V8 flags the operator process runs with, wherever it is started: the Dockerfile's ENTRYPOINT,
// `npm start`, the demo, the integration tests and the benchmark. node-flags.test.ts checks that the
// Dockerfile and package.json pass exactly these.
//
// The operator's heap is small and steady (its caches: under 1 KB a pod), but it allocates fast: every
// watch event is a parsed pod of several KB that dies at once. Left to its defaults V8 answers that
// with a big nursery and an old generation allowed to grow to about 3.5 times what is live before it
// collects, which is most of the process's RSS. Measured on 10,000 pods over 1,000 kwok nodes (driver
// runs, one at a time on a loaded 2-core machine): defaults 397 MB peak RSS; semi-spaces capped at
// 8 MB 273 MB; plus a growing factor of 2: 187 MB, at about the same CPU (35 s for the rollout).
// --optimize-for-size reached 153 MB but cost 70% more CPU.

/**
 * Cap on each of V8's two young-generation semi-spaces, in MB. V8 sizes them from the memory it
 * sees: 64 MB each on a 24 GB machine, 128 MB of RSS for a nursery whose objects die within
 * milliseconds. 8 MB keeps the nursery at 16 MB; 4 and 16 measured the same within noise.
 */
export const MAX_SEMI_SPACE_MB = 8;

/**
 * How far V8 lets the old generation grow past what the last full collection found live before it
 * collects again, in percent (V8's growing factor is 1 + this / 100; its own heuristic picks up to 4
 * for a heap this small). 100 keeps old space within twice the live set: at 10,000 pods about 50 MB
 * instead of 150 MB; 50 measured no lower. A full collection of a heap this size takes milliseconds.
 */
export const HEAP_GROWING_PERCENT = 100;

export const OPERATOR_NODE_FLAGS: readonly string[] = [`--max-semi-space-size=${MAX_SEMI_SPACE_MB}`, `--heap-growing-percent=${HEAP_GROWING_PERCENT}`];
