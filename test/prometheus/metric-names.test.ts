import { describe, expect, it } from "vitest";
import { dashboardExpressions, metricNames, ruleExpressions } from "./metric-names.ts";

describe("metricNames", () => {
  it("finds the metrics of an expression, not its functions, labels or keywords", () => {
    expect(metricNames('sum by (namespace, pod) (rate(rest_client_requests_total{code="429"}[5m])) > 1')).toEqual(["rest_client_requests_total"]);
    expect(metricNames('max by (namespace, name, limited_by) (batchrollout_wave_limited_by{limited_by=~"A|B"}) == 1')).toEqual(["batchrollout_wave_limited_by"]);
    expect(metricNames("a_total / on (x) group_left b_total or vector(0)")).toEqual(["a_total", "b_total"]);
  });

  it("reads the dashboard's panels and variables and the rules' expressions", () => {
    const dashboard = new Set(dashboardExpressions().flatMap(metricNames));
    expect([...dashboard].sort()).toEqual([
      "batchrollout_pods",
      "batchrollout_signal_ip_free",
      "batchrollout_signal_scheduler_pending",
      "batchrollout_signal_throttled_total",
      "batchrollout_signal_write_latency_p90_seconds",
      "batchrollout_wave_limited_by",
      "batchrollout_wave_size",
      "batchrollout_write_rate_per_second",
      "leader_election_master_status",
      "rest_client_requests_total",
    ]);
    expect(ruleExpressions().flatMap(metricNames).sort()).toEqual(["batchrollout_wave_limited_by", "leader_election_master_status", "rest_client_requests_total"]);
  });
});
