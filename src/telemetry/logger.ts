import { pino, type Logger, type LevelWithSilent } from "pino";

// One structured JSON line per decision that matters. Child loggers carry the controller, the
// object key and the reconcile id, so a person can follow one rollout through the log.

export function createLogger(level: LevelWithSilent = "info"): Logger {
  return pino({
    level,
    base: { component: "batchrollout-operator" },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}

export type { Logger };
