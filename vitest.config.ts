import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["src/**/*.test.ts", "test/cluster/**/*.test.ts", "test/chart/**/*.test.ts", "test/image/**/*.test.ts", "test/prometheus/**/*.test.ts", "test/gitops/**/*.test.ts", "bench/**/*.test.ts"],
        },
      },
      {
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          globalSetup: ["test/integration/global-setup.ts"],
          // One control plane serves every file; files share it, each test gets its own namespace.
          fileParallelism: false,
          testTimeout: 300_000,
          hookTimeout: 600_000,
        },
      },
    ],
  },
});
