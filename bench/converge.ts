/**
 * Firewall converge time per host, batched against per-rule, on lab hosts (test/harness/lab.ts:
 * network namespaces with their own /etc/ufw and real ufw/iptables). For each cluster size, one
 * host per path runs the agent-0 script of that size: fresh host, again with no change, then with
 * one peer added. The per-rule path is the baseline (one `ufw` process per rule).
 */
import { FirewallCluster, nodeRuleSet } from "../lib/render/firewall-rules";
import { renderBatchedFirewallScript, renderFirewallScript, sharedSources } from "../lib/render/ufw-script";
import { createLab } from "../test/harness/lab";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

export interface ConvergeTimes { nodes: number; rules: number; batched: Record<Step, number>; perRule: Record<Step, number> }
export type Step = "fresh" | "no change" | "peer added";
export const STEPS: Step[] = ["fresh", "no change", "peer added"];

export function benchCluster(n: number): FirewallCluster {
  return {
    nodes: [
      { name: "server", role: "server", address: "203.0.113.250" },
      ...Array.from({ length: n - 1 }, (_, i) => ({
        name: `agent-${i}`, role: "agent" as const, address: `198.51.${100 + Math.floor(i / 200)}.${1 + (i % 200)}`,
      })),
    ],
    adminCidrs: ["192.0.2.7/32"],
  };
}

export function convergeScripts(n: number, batched: boolean): { rules: number; scripts: Record<Step, string> } {
  // As PeerFirewall deploys it: the shared peer list, and this node's rules pointing into it.
  const render = (c: FirewallCluster) => {
    const set = nodeRuleSet(c, "agent-0");
    if (!batched) return renderFirewallScript(set, LATE);
    return renderBatchedFirewallScript(set, LATE, sharedSources(c));
  };
  const rules = nodeRuleSet(benchCluster(n), "agent-0").rules.length;
  return { rules, scripts: { "fresh": render(benchCluster(n)), "no change": render(benchCluster(n)), "peer added": render(benchCluster(n + 1)) } };
}

/** Measure on lab hosts; sizes run one after the other, each on two fresh hosts. */
export async function measureConverge(sizes: number[]): Promise<ConvergeTimes[]> {
  const lab = await createLab({
    hosts: sizes.flatMap((n, i) => [
      { name: `cb${n}`, address: `203.0.113.${100 + 2 * i}` },
      { name: `cp${n}`, address: `203.0.113.${101 + 2 * i}` },
    ]),
  });
  try {
    const out: ConvergeTimes[] = [];
    for (const n of sizes) {
      const row = { nodes: n, rules: 0, batched: {}, perRule: {} } as ConvergeTimes;
      for (const batched of [true, false]) {
        const host = lab.host(`${batched ? "cb" : "cp"}${n}`);
        const { rules, scripts } = convergeScripts(n, batched);
        row.rules = rules;
        for (const step of STEPS) {
          const t0 = process.hrtime.bigint();
          const r = await host.exec("cat > /tmp/fw.sh && sh /tmp/fw.sh", { input: scripts[step], timeoutMs: 900_000 });
          const s = Number(process.hrtime.bigint() - t0) / 1e9;
          if (r.code !== 0) throw new Error(`converge ${n} nodes ${step} (${batched ? "batched" : "per-rule"}): ${r.stderr}`);
          (batched ? row.batched : row.perRule)[step] = s;
        }
      }
      out.push(row);
    }
    return out;
  } finally {
    await lab.cleanup();
  }
}
