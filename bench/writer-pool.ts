import { setTimeout as sleep } from "node:timers/promises";
import { KubeClient, type ResponseObservation } from "../src/kube/client.ts";
import { isAlreadyExists } from "../src/kube/errors.ts";
import { PODS, resourcePath } from "../src/kube/resources.ts";
import { podManifest } from "./pod-template.ts";

// Our own bulk writers (storm, seed batches, the stressor's steady second writer): plain pod creates
// with the writer identity and no client-side concurrency limit. undici negotiates HTTP/2 with kube-apiserver, so every
// create is on the wire at once as a stream (a storm of 1,000 used 16 connections); several clients
// keep that true even if a server caps streams per connection, or if HTTP/1.1 is negotiated (then each
// client holds MAX_CONNECTIONS). 429s are retried after Retry-After, as client-go and kubectl do.

/** Clients in the pool; over HTTP/1.1 they would still hold 8 × MAX_CONNECTIONS (512) creates at once. */
export const WRITER_CLIENTS = 8;

export interface WriteSummary {
  created: number;
  existed: number;
  failed: number;
  firstError?: string;
}

export class WriterPool {
  readonly #clients: KubeClient[];
  #next = 0;

  private constructor(clients: KubeClient[]) {
    this.#clients = clients;
  }

  static async open(kubeconfig: string, clients = WRITER_CLIENTS): Promise<WriterPool> {
    return new WriterPool(await Promise.all(Array.from({ length: clients }, () => KubeClient.fromKubeconfig(kubeconfig))));
  }

  onResponse(observer: (o: ResponseObservation) => void): void {
    for (const c of this.#clients) c.onResponse(observer);
  }

  /** Fires every create at once (round-robin over the clients) and waits for all answers. */
  async createAll(method: string, namespace: string, names: readonly string[]): Promise<WriteSummary> {
    const summary: WriteSummary = { created: 0, existed: 0, failed: 0 };
    await Promise.all(names.map((name) => this.#create(method, namespace, name, summary)));
    return summary;
  }

  /**
   * A steady writer, open loop like kube-burner's QPS limiter: create i starts at i / perSecond
   * seconds, whether or not the earlier ones have been answered.
   */
  async createAtRate(method: string, namespace: string, names: readonly string[], perSecond: number): Promise<WriteSummary> {
    const summary: WriteSummary = { created: 0, existed: 0, failed: 0 };
    const start = performance.now();
    const inFlight: Promise<void>[] = [];
    for (const [i, name] of names.entries()) {
      const due = start + (i * 1_000) / perSecond;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      inFlight.push(this.#create(method, namespace, name, summary));
    }
    await Promise.all(inFlight);
    return summary;
  }

  async #create(method: string, namespace: string, name: string, summary: WriteSummary): Promise<void> {
    const client = this.#clients[this.#next++ % this.#clients.length]!;
    try {
      await client.request({ method: "POST", path: resourcePath(PODS, { namespace }), body: podManifest(method, namespace, name), discardBody: true });
      summary.created++;
    } catch (err) {
      if (isAlreadyExists(err)) summary.existed++;
      else {
        summary.failed++;
        summary.firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  }

  /** The shell-loop advice: `batch` creates in parallel, then sleep, until all are sent. */
  async createInBatches(method: string, namespace: string, names: readonly string[], batch: number, pauseMs: number): Promise<WriteSummary> {
    const total: WriteSummary = { created: 0, existed: 0, failed: 0 };
    for (let start = 0; start < names.length; start += batch) {
      const s = await this.createAll(method, namespace, names.slice(start, start + batch));
      total.created += s.created;
      total.existed += s.existed;
      total.failed += s.failed;
      total.firstError ??= s.firstError;
      if (start + batch < names.length) await sleep(pauseMs);
    }
    return total;
  }

  async close(): Promise<void> {
    await Promise.all(this.#clients.map((c) => c.close()));
  }
}
