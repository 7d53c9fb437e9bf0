import { describe, expect, it } from "vitest";
import { bucketIncrease, counterIncrease, histogramBuckets, histogramQuantile, parseFamilies } from "./prometheus.ts";

const TEXT = `# HELP apiserver_flowcontrol_current_inqueue_requests [BETA] Number of requests currently pending
# TYPE apiserver_flowcontrol_current_inqueue_requests gauge
apiserver_flowcontrol_current_inqueue_requests{flow_schema="service-accounts",priority_level="workload-low"} 3
apiserver_flowcontrol_current_inqueue_requests{flow_schema="kube-controller-manager",priority_level="workload-high"} 1
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="service-accounts",priority_level="workload-low",le="0.005"} 10
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",flow_schema="service-accounts",priority_level="workload-low",le="+Inf"} 12
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="false",flow_schema="service-accounts",priority_level="workload-low",le="0.005"} 0
apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="false",flow_schema="service-accounts",priority_level="workload-low",le="+Inf"} 2
apiserver_flowcontrol_request_wait_duration_seconds_sum{execute="true",flow_schema="service-accounts",priority_level="workload-low"} 0.7
apiserver_request_total{code="200",verb="GET"} 99
`;

describe("parseFamilies", () => {
  it("keeps only the wanted families, histogram series included", () => {
    const samples = parseFamilies(TEXT, ["apiserver_flowcontrol_request_wait_duration_seconds"]);
    expect(samples.map((s) => s.name)).toEqual([
      "apiserver_flowcontrol_request_wait_duration_seconds_bucket",
      "apiserver_flowcontrol_request_wait_duration_seconds_bucket",
      "apiserver_flowcontrol_request_wait_duration_seconds_bucket",
      "apiserver_flowcontrol_request_wait_duration_seconds_bucket",
      "apiserver_flowcontrol_request_wait_duration_seconds_sum",
    ]);
  });
});

describe("histogramBuckets", () => {
  it("sums matching series per bound and sorts by bound", () => {
    const samples = parseFamilies(TEXT, ["apiserver_flowcontrol_request_wait_duration_seconds"]);
    const buckets = histogramBuckets(samples, "apiserver_flowcontrol_request_wait_duration_seconds", (l) => l.priority_level === "workload-low");
    expect(buckets).toEqual([
      { le: 0.005, count: 10 },
      { le: Infinity, count: 14 },
    ]);
  });
});

describe("counterIncrease", () => {
  it("is 0 on the first scrape, the difference after, and all of current after a restart", () => {
    expect(counterIncrease(undefined, 5)).toBe(0);
    expect(counterIncrease(5, 9)).toBe(4);
    expect(counterIncrease(9, 2)).toBe(2);
  });
});

describe("bucketIncrease", () => {
  it("subtracts bucket by bucket", () => {
    const before = [
      { le: 0.1, count: 10 },
      { le: 1, count: 15 },
      { le: Infinity, count: 16 },
    ];
    const after = [
      { le: 0.1, count: 12 },
      { le: 1, count: 25 },
      { le: Infinity, count: 30 },
    ];
    expect(bucketIncrease(before, after)).toEqual([
      { le: 0.1, count: 2 },
      { le: 1, count: 10 },
      { le: Infinity, count: 14 },
    ]);
  });

  it("treats a smaller total as a restart", () => {
    const before = [{ le: Infinity, count: 100 }];
    const after = [{ le: Infinity, count: 3 }];
    expect(bucketIncrease(before, after)).toEqual([{ le: Infinity, count: 3 }]);
  });
});

describe("histogramQuantile", () => {
  const buckets = [
    { le: 0.1, count: 50 },
    { le: 0.5, count: 90 },
    { le: 1, count: 100 },
    { le: Infinity, count: 100 },
  ];

  it("interpolates inside the bucket holding the rank", () => {
    expect(histogramQuantile(0.5, buckets)).toBeCloseTo(0.1);
    expect(histogramQuantile(0.7, buckets)).toBeCloseTo(0.3);
    expect(histogramQuantile(0.99, buckets)).toBeCloseTo(0.95);
    expect(histogramQuantile(0.25, buckets)).toBeCloseTo(0.05);
  });

  it("answers the largest finite bound when the rank falls in +Inf", () => {
    expect(histogramQuantile(0.99, [{ le: 0.1, count: 1 }, { le: Infinity, count: 10 }])).toBe(0.1);
  });

  it("is undefined without observations or without +Inf", () => {
    expect(histogramQuantile(0.99, [{ le: 0.1, count: 0 }, { le: Infinity, count: 0 }])).toBeUndefined();
    expect(histogramQuantile(0.99, [{ le: 0.1, count: 5 }])).toBeUndefined();
    expect(histogramQuantile(0.99, [])).toBeUndefined();
  });

  it("tolerates a non-monotonic scrape", () => {
    expect(histogramQuantile(0.5, [{ le: 1, count: 10 }, { le: 2, count: 9 }, { le: Infinity, count: 10 }])).toBeCloseTo(0.5);
  });
});
