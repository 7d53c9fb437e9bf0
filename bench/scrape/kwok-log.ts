import { closeSync, existsSync, openSync, readSync, statSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";

// The test bed's kubelet, read from its own log. kwok v0.8.0 plays a pod's stages again when the pod
// reaches it a second time while still Pending (after a cut watch is resumed or relisted). The
// pod-ready patch carries the resourceVersion kwok saw, so such a replay is refused with a 409 and
// logged as a failed stage. Those pods are the ones whose Running the test bed delayed, whoever wrote them.

/** Bytes read per call: the log grows by ~20 MB per 10,000 pods. */
const CHUNK_BYTES = 1 << 20;
const REPLAY_STAGE = "pod-ready";
const CONFLICT = "the object has been modified";

interface FailedStage {
  msg?: string;
  stage?: string;
  pod?: string;
  err?: string;
}

/** The pod ("namespace/name") of a log line that records a replayed pod-ready stage, if it is one. */
export function replayedPod(line: string): string | undefined {
  // Cheap test first: nearly every line is a lease renewal or a successful patch.
  if (!line.includes(CONFLICT)) return undefined;
  let entry: FailedStage;
  try {
    entry = JSON.parse(line) as FailedStage;
  } catch {
    return undefined;
  }
  if (entry.msg !== "failed to apply stage" || entry.stage !== REPLAY_STAGE || !entry.err?.includes(CONFLICT)) return undefined;
  return entry.pod;
}

/**
 * Follows kwok's log from where the last scan stopped and keeps the replayed pods by namespace.
 * With `fromEnd`, what the log already holds (a reused cluster's earlier runs) is skipped unread.
 */
export class KwokLog {
  readonly #path: string;
  #offset: number;
  #partial = "";
  readonly #decoder = new StringDecoder("utf8");
  readonly #replayed = new Map<string, Set<string>>();

  constructor(path: string, { fromEnd = false }: { fromEnd?: boolean } = {}) {
    this.#path = path;
    this.#offset = fromEnd && existsSync(path) ? statSync(path).size : 0;
  }

  /** Reads what kwok has written since the previous scan. */
  scan(): void {
    if (!existsSync(this.#path)) return;
    const fd = openSync(this.#path, "r");
    try {
      const buffer = Buffer.alloc(CHUNK_BYTES);
      for (let read = readSync(fd, buffer, 0, CHUNK_BYTES, this.#offset); read > 0; read = readSync(fd, buffer, 0, CHUNK_BYTES, this.#offset)) {
        this.#offset += read;
        const lines = (this.#partial + this.#decoder.write(buffer.subarray(0, read))).split("\n");
        // A line kwok is still writing waits for the next read.
        this.#partial = lines.pop() ?? "";
        for (const line of lines) this.#note(line);
      }
    } finally {
      closeSync(fd);
    }
  }

  /** Distinct pods of a namespace kwok played twice, as of the last scan. */
  replayed(namespace: string): number {
    return this.#replayed.get(namespace)?.size ?? 0;
  }

  #note(line: string): void {
    const pod = replayedPod(line);
    if (!pod) return;
    const namespace = pod.slice(0, Math.max(0, pod.indexOf("/")));
    let pods = this.#replayed.get(namespace);
    if (!pods) this.#replayed.set(namespace, (pods = new Set()));
    pods.add(pod);
  }
}
