// V8 flags the operator process runs with, wherever it is started: the Dockerfile's ENTRYPOINT,
// `npm start`, the demo, the integration tests and the benchmark. node-flags.test.ts checks that the
// Dockerfile and package.json pass exactly these.

/**
 * Cap on each of V8's two young-generation semi-spaces, in MB. Left to itself V8 sizes them from the
 * memory it sees: 64 MB each on a 24 GB machine, 128 MB of RSS for a nursery the operator fills with
 * watch events that die within milliseconds. 8 MB keeps the nursery at 16 MB; measured at 10,000 pods
 * on 1,000 nodes (see the README's memory section) it cut peak RSS by about 100 MB for a few percent
 * more CPU (more scavenges, slightly more promotion).
 */
export const MAX_SEMI_SPACE_MB = 8;

export const OPERATOR_NODE_FLAGS: readonly string[] = [`--max-semi-space-size=${MAX_SEMI_SPACE_MB}`];
