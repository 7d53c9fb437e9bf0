import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { MetricsAuthorizer } from "../../src/telemetry/metrics-auth.ts";
import { paths } from "../cluster/layout.ts";
import { adminClient, cluster } from "./support/cluster.ts";

// The /metrics filter's TokenReview and SubjectAccessReview against the real API server: the
// operator's own ServiceAccount (granted get on /metrics by the chart, for the APF guardrail) is
// served, the namespace's default ServiceAccount is refused, a forged token is unauthenticated.

const execFileAsync = promisify(execFile);

describe("MetricsAuthorizer on the local control plane", () => {
  it("serves a token whose user may get /metrics, refuses one who may not, and rejects a forged one", async () => {
    const admin = await adminClient();
    try {
      const auth = new MetricsAuthorizer({ client: admin, logger: pino({ level: "silent" }) });
      const kubeconfig = parse(readFileSync(paths.operatorKubeconfig, "utf8")) as { users: { user: { token: string } }[] };
      const operatorToken = kubeconfig.users[0]?.user.token ?? "";
      const { stdout } = await execFileAsync(join(cluster().binDir, "kubectl"), ["--kubeconfig", paths.adminKubeconfig, "create", "token", "default", "-n", "default", "--duration=10m"]);

      expect((await auth.authorize(`Bearer ${operatorToken}`, "/metrics")).status).toBe(200);
      const refused = await auth.authorize(`Bearer ${stdout.trim()}`, "/metrics");
      expect(refused).toMatchObject({ status: 403, reason: expect.stringContaining("system:serviceaccount:default:default may not get /metrics") as unknown });
      expect((await auth.authorize("Bearer not-a-token", "/metrics")).status).toBe(401);
    } finally {
      await admin.close();
    }
  });
});
