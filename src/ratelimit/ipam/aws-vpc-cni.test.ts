import { describe, expect, it } from "vitest";
import { awsVpcCniHeadroom, parsePrometheusText } from "./aws-vpc-cni.ts";

// A trimmed scrape of ipamd's /metrics (port 61678) on an m5.large with prefix delegation off.
const IPAMD = `# HELP awscni_add_ip_req_count The number of add IP address requests
# TYPE awscni_add_ip_req_count counter
awscni_add_ip_req_count 41
# HELP awscni_assigned_ip_addresses The number of IP addresses assigned to pods
# TYPE awscni_assigned_ip_addresses gauge
awscni_assigned_ip_addresses 12
# HELP awscni_eni_allocated The number of ENIs allocated
# TYPE awscni_eni_allocated gauge
awscni_eni_allocated 2
# HELP awscni_total_ip_addresses The total number of IP addresses
# TYPE awscni_total_ip_addresses gauge
awscni_total_ip_addresses 20
# HELP awscni_ipamd_action_inprogress The number of ipamd actions in progress
# TYPE awscni_ipamd_action_inprogress gauge
awscni_ipamd_action_inprogress{fn="nodeIPPoolReconcile"} 0
awscni_ipamd_action_inprogress{fn="nodeInit"} 0
`;

describe("parsePrometheusText", () => {
  it("reads names, labels (quotes, escapes, braces inside values), values and timestamps", () => {
    const text = [
      "# a comment",
      "",
      'http_requests_total{method="post",code="200"} 1027 1395066363000',
      'msdos_file_access_time_seconds{path="C:\\\\DIR\\\\FILE.TXT",error="Cannot find file:\\n\\"FILE.TXT\\""} 1.458255915e9',
      'weird{label="a}b"} +Inf',
      "no_labels -3.5",
      "broken{label=} 1",
      "not a sample",
    ].join("\n");
    expect(parsePrometheusText(text)).toEqual([
      { name: "http_requests_total", labels: { method: "post", code: "200" }, value: 1027 },
      { name: "msdos_file_access_time_seconds", labels: { path: "C:\\DIR\\FILE.TXT", error: 'Cannot find file:\n"FILE.TXT"' }, value: 1.458255915e9 },
      { name: "weird", labels: { label: "a}b" }, value: Infinity },
      { name: "no_labels", labels: {}, value: -3.5 },
    ]);
  });
});

describe("awsVpcCniHeadroom", () => {
  it("sums total minus assigned over nodes", () => {
    const result = awsVpcCniHeadroom([
      { source: "ip-10-0-1-23", text: IPAMD },
      { source: "ip-10-0-2-41", text: IPAMD.replace("awscni_assigned_ip_addresses 12", "awscni_assigned_ip_addresses 20") },
    ]);
    expect(result).toMatchObject({ provider: "AwsVpcCni", free: 8 + 0, capacity: 40 });
    expect(result.perSource.map((s) => s.free)).toEqual([8, 0]);
  });

  it("sums samples of one gauge and never goes negative", () => {
    const text = 'awscni_total_ip_addresses{eni="a"} 10\nawscni_total_ip_addresses{eni="b"} 5\nawscni_assigned_ip_addresses 18\n';
    expect(awsVpcCniHeadroom([{ source: "n", text }]).free).toBe(0);
  });

  it("names scrapes missing a gauge and reports unknown when none is usable", () => {
    const partial = awsVpcCniHeadroom([
      { source: "good", text: IPAMD },
      { source: "empty", text: "# nothing\n" },
    ]);
    expect(partial.free).toBe(8);
    expect(partial.message).toContain("missing from empty");
    expect(awsVpcCniHeadroom([{ source: "empty", text: "" }]).free).toBeUndefined();
  });
});
