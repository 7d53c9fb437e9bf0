import { configUsage, loadConfig } from "./api/config.ts";
import { runOperator } from "./operator.ts";
import { createLogger } from "./telemetry/logger.ts";

// The operator binary. SIGTERM or SIGINT stops intake, lets writes in flight finish, releases
// the leader Lease and exits; a second signal exits at once.

async function main(): Promise<void> {
  if (process.argv.includes("--help")) {
    console.log(`usage: batchrollout-operator [flags]\n${configUsage()}`);
    return;
  }
  let config;
  try {
    config = loadConfig(process.argv.slice(2), process.env);
  } catch (err) {
    console.error(err instanceof Error ? err.message : String(err));
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  const stop = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.on(sig, () => {
      if (stop.signal.aborted) process.exit(1);
      logger.info({ signal: sig }, "shutting down");
      stop.abort();
    });
  }
  logger.info({ config: { ...config, kubeconfig: config.kubeconfig ? "(set)" : undefined } }, "starting");
  await runOperator(config, logger, stop.signal);
  logger.info("stopped");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
