// Lines a child process (bulk writer or bystander) prints on stdout, one JSON object each.

export type WriterLine =
  | { type: "start"; at: number }
  | { type: "response"; at: number; ms: number; code: number; method: string; retryAfter?: number }
  | { type: "pf"; flowSchemaUid: string; priorityLevelUid: string }
  | { type: "done"; at: number; created: number; existed: number; failed: number; firstError?: string };

export type BystanderOp = "get-pod" | "list-configmaps" | "create-configmap" | "delete-configmap";

export type BystanderLine =
  | { type: "request"; at: number; ms: number; op: BystanderOp; code: number; error?: string }
  | { type: "pf"; flowSchemaUid: string; priorityLevelUid: string };
