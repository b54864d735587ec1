/**
 * `npm run bench`: cost and change impact by cluster size, as one Markdown table, with every
 * target of issue 6 checked and any miss printed plainly.
 *
 * Options: --runs N (timed runs per size, default 5), --sizes 6,50,200, --servers 1,3,
 * --no-hosts (skip the real-host runs: SSH count, firewall converge), --no-terraform (skip terraform
 * validate/plan), --out FILE (also write the report there).
 */
import { upgradePath, UpgradePath } from "./upgrade";
import { spawn } from "child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "fs";
import { cpus, freemem, loadavg, totalmem, tmpdir } from "os";
import { join } from "path";
import { Variant, VARIANTS } from "./cluster";
import {
  buildGraph, computedSsh, criticalPath, CriticalPath, describePaths, firewallCounts, ImpactSummary, readSynth, summarizeImpact, SynthJson,
} from "./analyze";
import { harnessUnavailable, measureSsh, MeasuredSsh } from "./measure-ssh";
import { ConvergeTimes, measureConverge, STEPS } from "./converge";
import { measureTerraform, TerraformTimes } from "./terraform";

interface ChildResult { startupMs: number; loadMs: number; buildMs: number; synthMs: number; totalMs: number; cpuMs: number; maxRssKb: number }
interface Timed { wallMs: number; rssKb: number; processCpuMs?: number; child: ChildResult }

const args = process.argv.slice(2);
const opt = (name: string, dflt: string) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : dflt; };
const RUNS = Number(opt("runs", "5"));
const SIZES = opt("sizes", "6,50,200").split(",").map(Number);
const SERVERS = opt("servers", "1,3").split(",").map(Number);
const HOSTS = !args.includes("--no-hosts");
const OUT = opt("out", "");
const TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
const CHILD = join(__dirname, "synth-child.js");

/** Run one synth in a fresh process; wall time measured here, peak RSS by /usr/bin/time -v (or the child). */
function runChild(nodes: number, servers: number, variant: Variant, outdir: string): Promise<Timed> {
  const argv = [process.execPath, CHILD, String(nodes), String(servers), variant, outdir];
  const [cmd, ...rest] = TIME ? [TIME, "-v", ...argv] : argv;
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const c = spawn(cmd, rest, { stdio: ["ignore", "pipe", "pipe"] });
    let out = ""; let err = "";
    c.stdout.setEncoding("utf8").on("data", (d) => (out += d));
    c.stderr.setEncoding("utf8").on("data", (d) => (err += d));
    c.on("close", (code) => {
      const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
      if (code !== 0) return reject(new Error(`synth of ${nodes}/${servers}/${variant} exited ${code}: ${err.slice(-2000)}`));
      const child = JSON.parse(out.trim().split("\n").pop()!) as ChildResult;
      const m = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      const u = /User time \(seconds\): ([\d.]+)/.exec(err);
      const sy = /System time \(seconds\): ([\d.]+)/.exec(err);
      resolve({ wallMs, rssKb: m ? Number(m[1]) : child.maxRssKb, processCpuMs: u && sy ? (Number(u[1]) + Number(sy[1])) * 1000 : undefined, child });
    });
  });
}

const median = (xs: number[]) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
const sec = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const mib = (kb: number) => `${Math.round(kb / 1024)} MiB`;
const size = (bytes: number) => bytes > 1024 * 1024 ? `${(bytes / 1024 / 1024).toFixed(1)} MiB` : `${Math.round(bytes / 1024)} KiB`;
const range = (xs: number[]) => { const lo = Math.min(...xs); const hi = Math.max(...xs); return lo === hi ? `${lo}` : `${lo}–${hi}`; };

interface Row {
  nodes: number; servers: number;
  wallMs: number; minWallMs: number; processCpuMs?: number; load: number; rssKb: number; inProcMs: number; cpuMs: number; noFwCpuMs: number; jsonBytes: number; resources: number;
  rulesAgent: number; rulesServer: number; rulesTotal: number; ufwFresh: string; ufwConverged: string;
  path: CriticalPath; impact: Record<string, ImpactSummary>; upgrade?: UpgradePath;
  sshFresh: string; sshRerun: string; rerunInstalls: number;
}

async function measure(nodes: number, servers: number, work: string): Promise<Row> {
  const base = join(work, `base-${nodes}-${servers}`);
  const load0 = loadavg()[0];
  const timed: Timed[] = [];
  for (let r = 0; r < RUNS; r++) timed.push(await runChild(nodes, servers, "base", base));
  const noFw: Timed[] = [];
  for (let r = 0; r < Math.max(1, Math.min(3, RUNS)); r++) noFw.push(await runChild(nodes, servers, "no-firewall", join(work, `nofw-${nodes}-${servers}`)));
  const synth = readSynth(base);
  const graph = buildGraph(synth);
  const fw = firewallCounts(graph, synth);
  const serverHosts = new Set(graph.filter((n) => n.type === "terraform_data" && /\/server(-\d+)?\/install$/.test(n.path)).map((n) => n.sshHost!));
  const rulesOf = (server: boolean) => [...fw.rulesPerNode].filter(([h]) => serverHosts.has(h) === server).map(([, c]) => c);
  const ssh = computedSsh(synth);
  const impact: Record<string, ImpactSummary> = {};
  let upgrade: UpgradePath | undefined;
  for (const v of VARIANTS) {
    const dir = join(work, `${v}-${nodes}-${servers}`);
    await runChild(nodes, servers, v, dir);
    impact[v] = summarizeImpact(synth, readSynth(dir));
    if (v === "k3s-version") upgrade = upgradePath(synth, readSynth(dir));
  }
  const agentsRange = (m: Map<string, number>) => range([...m].filter(([h]) => !serverHosts.has(h)).map(([, c]) => c));
  const serversRange = (m: Map<string, number>) => range([...m].filter(([h]) => serverHosts.has(h)).map(([, c]) => c));
  return {
    nodes, servers,
    wallMs: median(timed.map((t) => t.wallMs)),
    minWallMs: Math.min(...timed.map((t) => t.wallMs)),
    processCpuMs: timed.every((t) => t.processCpuMs !== undefined) ? median(timed.map((t) => t.processCpuMs!)) : undefined,
    load: Math.max(load0, loadavg()[0]),
    rssKb: median(timed.map((t) => t.rssKb)),
    inProcMs: median(timed.map((t) => t.child.buildMs + t.child.synthMs)),
    cpuMs: median(timed.map((t) => t.child.cpuMs)),
    noFwCpuMs: median(noFw.map((t) => t.child.cpuMs)),
    jsonBytes: synth.stacks.reduce((a, s) => a + s.bytes, 0),
    resources: graph.filter((n) => n.mode === "managed").length,
    rulesAgent: Math.max(...rulesOf(false)), rulesServer: Math.max(...rulesOf(true)), rulesTotal: fw.totalRules,
    ufwFresh: `${agentsRange(fw.ufwFreshPerNode)} / ${serversRange(fw.ufwFreshPerNode)}`,
    ufwConverged: range([...fw.ufwConvergedPerNode.values()]),
    path: criticalPath(graph),
    impact, upgrade,
    sshFresh: `${agentsRange(ssh.fresh)} / ${serversRange(ssh.fresh)}`,
    sshRerun: `${agentsRange(ssh.rerun)} / ${serversRange(ssh.rerun)}`,
    rerunInstalls: ssh.rerunInstalls,
  };
}

function stagesText(p: CriticalPath): string {
  return p.stages.map((s) => Object.entries(s.kinds).map(([k, c]) => `${c} ${k}`).join(" + ")).join(" → ");
}

function impactCell(i: ImpactSummary): string {
  const parts = [`**${i.replaced.length} replaced**${i.replaced.length ? ` (${describePaths(i.replaced)})` : ""}`];
  if (i.added.length) parts.push(`+${i.added.length} added (${describePaths(i.added)})`);
  if (i.removed.length) parts.push(`−${i.removed.length} removed (${describePaths(i.removed)})`);
  if (i.updated.length) parts.push(`${i.updated.length} updated in place (${describePaths(i.updated)})`);
  return parts.join("; ");
}

interface Check { target: string; ok: boolean; detail: string }

function checks(rows: Row[], measured?: MeasuredSsh): Check[] {
  const out: Check[] = [];
  const by = (n: number, s: number) => rows.find((r) => r.nodes === n && r.servers === s);
  const cores = cpus().length;
  for (const r of rows.filter((x) => x.nodes === Math.max(...SIZES))) {
    const busy = r.load > cores ? ` — the machine was busy (load average ${r.load.toFixed(1)} on ${cores} cores): fastest run ${sec(r.minWallMs)}, whole-process CPU ${r.processCpuMs !== undefined ? sec(r.processCpuMs) : "n/a"}` : "";
    out.push({ target: `${r.nodes} nodes/${r.servers} server(s) synthesize in < 5 s (whole process wall time, median, ${cores} cores)`, ok: r.wallMs < 5000, detail: `${sec(r.wallMs)}${busy}` });
  }
  for (const s of SERVERS) {
    const small = by(Math.min(...SIZES), s); const big = by(Math.max(...SIZES), s);
    if (!small || !big || small === big) continue;
    const nodeRatio = big.nodes / small.nodes;
    const rest = (big.noFwCpuMs / small.noFwCpuMs) / nodeRatio;
    out.push({ target: `${s} server(s): build+synth CPU time without the firewall grows at most linearly (per-node cost ratio ${big.nodes}:${small.nodes} ≤ 1.5)`, ok: rest <= 1.5,
      detail: `${sec(small.noFwCpuMs)} → ${sec(big.noFwCpuMs)} for ×${nodeRatio.toFixed(1)} nodes: per-node cost ×${rest.toFixed(2)}` });
    const all = (big.cpuMs / small.cpuMs) / nodeRatio;
    out.push({ target: `${s} server(s): build+synth CPU time with the firewall, per-node cost ratio ${big.nodes}:${small.nodes} (reported, N² rules inside)`, ok: true,
      detail: `${sec(small.cpuMs)} → ${sec(big.cpuMs)}: per-node cost ×${all.toFixed(2)}` });
    const fwSmall = Math.max(1, small.cpuMs - small.noFwCpuMs); const fwBig = Math.max(1, big.cpuMs - big.noFwCpuMs);
    out.push({ target: `${s} server(s): the firewall's share of CPU time (reported apart: its rules are N²)`, ok: true,
      detail: `${sec(fwSmall)} → ${sec(fwBig)} (×${(fwBig / fwSmall).toFixed(1)}; rules ×${(big.rulesTotal / small.rulesTotal).toFixed(1)}; nodes ×${nodeRatio.toFixed(1)}, nodes² ×${(nodeRatio ** 2).toFixed(0)})` });
    const sa = small.path.stages.length; const sb = big.path.stages.length;
    out.push({ target: `${s} server(s): critical path has the same number of stages at ${small.nodes} and ${big.nodes} nodes`, ok: sa === sb, detail: `${sa} vs ${sb}` });
  }
  for (const r of rows) {
    const id = `${r.nodes}/${r.servers}`;
    for (const v of ["add-agent", "remove-agent"] as const) {
      const i = r.impact[v];
      const bad = [...i.replaced, ...i.added, ...i.removed].filter((p) => {
        const path = p.slice(p.indexOf(":") + 1);
        return !(path.includes("/firewall/") || /\/agent-\d+\//.test(path) && (v === "add-agent" ? i.added.includes(p) : i.removed.includes(p)) || /\/node-agent-\d+$/.test(path));
      });
      const installs = i.installsReplaced.length;
      out.push({ target: `${id}: ${v === "add-agent" ? "adding" : "removing"} an agent replaces only that agent's install and the firewalls`, ok: bad.length === 0 && installs === 0,
        detail: bad.length || installs ? `also: ${[...bad, ...i.installsReplaced].slice(0, 5).join(", ")}` : impactCell(i).replace(/\*\*/g, "") });
    }
    const c = r.impact["admin-cidrs"];
    const nonFw = [...c.replaced, ...c.added, ...c.removed, ...c.updated].filter((p) => !p.includes("/firewall/"));
    out.push({ target: `${id}: changing admin networks touches firewalls only`, ok: nonFw.length === 0, detail: nonFw.length ? `also: ${nonFw.slice(0, 5).join(", ")}` : impactCell(c).replace(/\*\*/g, "") });
    const k = r.impact["kilo-option"];
    const nonK8s = [...k.replaced, ...k.added, ...k.removed, ...k.updated].filter((p) => !p.includes("/kilo/"));
    out.push({ target: `${id}: changing a Kilo option touches Kubernetes objects only`, ok: nonK8s.length === 0, detail: impactCell(k).replace(/\*\*/g, "") });
    const d = r.impact["k3s-version-server"];
    const agentsReinstalled = d.installsReplaced.filter((p) => /\/agent-\d+\//.test(p));
    out.push({ target: `${id}: changing one node's K3s version (the server's) re-runs that node's install only`, ok: agentsReinstalled.length === 0,
      detail: agentsReinstalled.length ? `${agentsReinstalled.length} agent installs replaced too (${d.deferredReads.length ? `kubeconfig fetch deferred to apply: ${describePaths(d.deferredReads)}` : "see details"})` : impactCell(d).replace(/\*\*/g, "") });
  }
  const computedOk = rows.every((r) => r.rerunInstalls === 0 && r.sshRerun.split(/[ /]+/).filter(Boolean).every((x) => x.split("–").every((y) => Number(y) <= 1)));
  out.push({ target: "no-change re-run: ≤ 1 SSH session per node and no installer (computed from the graph, all sizes)", ok: computedOk, detail: rows.map((r) => `${r.nodes}/${r.servers}: agent/server ${r.sshRerun}, installs ${r.rerunInstalls}`).join("; ") });
  if (measured) {
    const max = Math.max(...Object.values(measured.rerun));
    out.push({ target: "no-change re-run: ≤ 1 SSH session per node and no installer (MEASURED on real hosts, 6 nodes)", ok: max <= 1 && measured.rerunInstalls === 0,
      detail: `sessions ${JSON.stringify(measured.rerun)}, installer runs ${measured.rerunInstalls}` });
  }
  return out;
}

/** Whole-process wall time of `node -e 'require(lib)'`, median of 5 (the compiled library next to the bench). */
async function timeRequire(): Promise<number> {
  const lib = join(__dirname, "..", "lib", "index.js");
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const c = spawn(process.execPath, ["-e", `require(${JSON.stringify(lib)})`], { stdio: "ignore" });
      c.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`require exited ${code}`))));
    });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return median(times);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "cdktf-k3s-kilo-bench-"));
  const lines: string[] = [];
  const say = (s = "") => { lines.push(s); console.log(s); };
  try {
    const rows: Row[] = [];
    for (const n of SIZES) for (const s of SERVERS) {
      process.stderr.write(`bench: ${n} nodes, ${s} server(s)…\n`);
      rows.push(await measure(n, s, work));
    }
    let measured: MeasuredSsh | undefined;
    let measuredNote = "";
    const why = HOSTS ? harnessUnavailable() : "--no-hosts";
    if (!why) {
      process.stderr.write("bench: SSH sessions on real hosts (6 nodes)…\n");
      try { measured = await measureSsh(6, false); } catch (e) { measuredNote = `real-host run failed: ${(e as Error).message.split("\n")[0]}`; }
    } else measuredNote = `real-host run skipped: ${why}`;

    let converge: ConvergeTimes[] | undefined;
    let convergeNote = "";
    if (!why) {
      process.stderr.write("bench: firewall converge on lab hosts, batched and per-rule…\n");
      try { converge = await measureConverge(SIZES); } catch (e) { convergeNote = `real-host run failed: ${(e as Error).message.split("\n")[0]}`; }
    } else convergeNote = `real-host run skipped: ${why}`;
    const requireMs = await timeRequire();
    let tfTimes: TerraformTimes[] | undefined;
    let tfNote = "";
    if (!args.includes("--no-terraform")) {
      process.stderr.write("bench: terraform validate / plan -refresh=false (real random and local providers)…\n");
      try { tfTimes = await measureTerraform(SIZES); } catch (e) { tfNote = `failed: ${(e as Error).message.split("\n")[0]}`; }
    } else tfNote = "--no-terraform";

    say("| nodes (servers) | synth, whole process: wall median of " + RUNS + " (fastest; CPU) | load avg | peak RSS | JSON | resources | fw rules per node agent / server | fw rules total | ufw calls per node, fresh host agent / server | ufw calls, converged | critical path (stages) | parallel steps per stage | SSH sessions per node, fresh deploy agent / server | SSH per node, no-change re-run agent / server |");
    say("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (const r of rows) {
      const m = measured && r.nodes === 6 && r.servers === 1;
      const split = (x: Record<string, number>) => `${range(Object.entries(x).filter(([h]) => h !== "server").map(([, c]) => c))} / ${x.server}`;
      const mFresh = m ? `; measured ${split(measured!.fresh)}` : "";
      const mRerun = m ? `; measured ${split(measured!.rerun)}` : "";
      say(`| ${r.nodes} (${r.servers}) | ${sec(r.wallMs)} (${sec(r.minWallMs)}; ${r.processCpuMs !== undefined ? sec(r.processCpuMs) : "n/a"}); of which build+synth CPU ${sec(r.cpuMs)}, ${sec(r.noFwCpuMs)} without the firewall | ${r.load.toFixed(1)} | ${mib(r.rssKb)} | ${size(r.jsonBytes)} | ${r.resources} | ${r.rulesAgent} / ${r.rulesServer} | ${r.rulesTotal} | ${r.ufwFresh} | ${r.ufwConverged} | ${r.path.stages.length} (graph depth ${r.path.depth}) | ${r.path.stages.map((s) => s.width).join(" → ")} | ${r.sshFresh} computed${mFresh} | ${r.sshRerun} computed${mRerun} |`);
    }
    say();
    say("Change impact (computed by diffing two synths: a resource is replaced when its `triggers` / `triggers_replace` differ or hold a value unknown at plan):");
    say();
    say("| nodes (servers) | (a) add an agent | (b) remove an agent | (c) admin networks | (d) K3s version, all nodes | (d′) K3s version, server only | (e) Kilo option (MTU) |");
    say("|---|---|---|---|---|---|---|");
    for (const r of rows) {
      say(`| ${r.nodes} (${r.servers}) | ${VARIANTS.map((v) => impactCell(r.impact[v])).join(" | ")} |`);
    }
    say();
    say("Critical path stages (work steps that can run at once; Terraform runs 10 at a time unless `-parallelism` is raised):");
    say();
    for (const r of rows) say(`- ${r.nodes} (${r.servers}): ${stagesText(r.path)}`);
    say();
    say("Upgrade (d: every node's K3s version) next to the fresh deploy: stages of replaced work steps in the graph; agents then take turns through the rollout slots (maxUnavailable 1):");
    say();
    say("| nodes (servers) | fresh deploy: stages | upgrade: stages | upgrade stages | agents restarted | rolling turns (maxUnavailable 1) |");
    say("|---|---|---|---|---|---|");
    for (const r of rows) if (r.upgrade) say(`| ${r.nodes} (${r.servers}) | ${r.path.stages.length} | ${r.upgrade.stages} | ${r.upgrade.kinds.join(" → ")} | ${r.upgrade.agentsReplaced} | ${r.upgrade.rollingWaves} |`);
    say();
    if (measured) {
      say(`SSH sessions measured on real hosts (real Terraform 1.11.4 on the harness's hosts, 6 nodes, ssh rate limit ${measured.rateLimitSsh ? "on" : "off (default)"}): fresh deploy ${JSON.stringify(measured.fresh)} in ${measured.freshSeconds.toFixed(1)} s; ` +
        `no-change re-run ${JSON.stringify(measured.rerun)} in ${measured.rerunSeconds.toFixed(1)} s, installer runs ${measured.rerunInstalls}, planned changes ${measured.rerunChanges.length ? measured.rerunChanges.join(", ") : "none"}.`);
      const b = measured.serverVersionBump;
      say(`Then the server's K3s version alone bumped and applied on the same hosts: replaced ${b.replaced.join(", ") || "nothing"}; ` +
        `installer runs ${JSON.stringify(b.installerRuns)}; SSH sessions ${JSON.stringify(b.sessions)}.`);
    } else say(`SSH sessions: computed from the graph only (${measuredNote}).`);
    say();
    if (converge) {
      say("Firewall converge per host (agent-0's script, lab host with real ufw; per-rule path = baseline, one `ufw` per rule):");
      say();
      say(`| nodes | rules | ${STEPS.map((x) => `${x}: batched / per-rule (ratio)`).join(" | ")} |`);
      say(`|---|---|${STEPS.map(() => "---").join("|")}|`);
      for (const c of converge) {
        say(`| ${c.nodes} | ${c.rules} | ${STEPS.map((x) => `${c.batched[x].toFixed(2)} s / ${c.perRule[x].toFixed(2)} s (${(c.batched[x] / c.perRule[x]).toFixed(3)})`).join(" | ")} |`);
      }
    } else say(`Firewall converge: not measured (${convergeNote}).`);
    say();
    if (tfTimes) {
      say("Terraform 1.11.4 on the cluster stack (real random and local providers, one run each; `plan -refresh=false` on empty state):");
      say();
      say("| nodes | cdk.tf.json with / without PeerFirewall | validate with / without | plan -refresh=false with / without (firewall's share) |");
      say("|---|---|---|---|");
      for (const n of SIZES) {
        const a = tfTimes.find((t) => t.nodes === n && t.variant === "base")!;
        const b = tfTimes.find((t) => t.nodes === n && t.variant === "no-firewall")!;
        say(`| ${n} | ${size(a.jsonBytes)} / ${size(b.jsonBytes)} | ${sec(a.validateMs)} / ${sec(b.validateMs)} | ${sec(a.planMs)} / ${sec(b.planMs)} (+${Math.round((a.planMs / b.planMs - 1) * 100)} %) |`);
      }
    } else say(`Terraform validate/plan: not measured (${tfNote}).`);
    say();
    const cs = checks(rows, measured);
    say("Targets (issue 6):");
    say();
    for (const c of cs) say(`- ${c.ok ? "MET   " : "MISSED"} ${c.target}: ${c.detail}`);
    say();
    const c200 = converge?.find((c) => c.nodes === 200);
    const t13: Check[] = [];
    if (c200) {
      t13.push({ target: "firewall converge, fresh host, 200-node cluster ≤ 1 s", ok: c200.batched.fresh <= 1, detail: `${c200.batched.fresh.toFixed(2)} s (per-rule ${c200.perRule.fresh.toFixed(1)} s)` });
      t13.push({ target: "same, no change ≤ 0.2 s", ok: c200.batched["no change"] <= 0.2, detail: `${c200.batched["no change"].toFixed(2)} s (per-rule ${c200.perRule["no change"].toFixed(2)} s)` });
      t13.push({ target: "same, one peer added ≤ 0.3 s", ok: c200.batched["peer added"] <= 0.3, detail: `${c200.batched["peer added"].toFixed(2)} s (per-rule ${c200.perRule["peer added"].toFixed(2)} s)` });
    } else t13.push({ target: "firewall converge at 200 nodes (≤ 1 s fresh, ≤ 0.2 s no change, ≤ 0.3 s peer added)", ok: false, detail: `not measured: ${convergeNote}` });
    // Every 200-node row (1 server, and 3 when measured): the HA cluster carries more scripts.
    for (const r of rows.filter((x) => x.nodes === 200)) {
      t13.push({ target: `200-node cluster (${r.servers} server${r.servers > 1 ? "s" : ""}) JSON ≤ 3 MiB (cdk.tf.json, both stacks)`, ok: r.jsonBytes <= 3 * 2 ** 20, detail: size(r.jsonBytes) });
      t13.push({ target: `200-node synth (${r.servers} server${r.servers > 1 ? "s" : ""}), whole process ≤ 2 s`, ok: r.wallMs <= 2000, detail: `${sec(r.wallMs)} median (fastest ${sec(r.minWallMs)}), load ${r.load.toFixed(1)}` });
    }
    t13.push({ target: "require(\"cdktf-k3s-kilo\") ≤ 0.4 s (whole process)", ok: requireMs <= 400, detail: `${sec(requireMs)} median of 5` });
    const tfA = tfTimes?.find((t) => t.nodes === 200 && t.variant === "base");
    const tfB = tfTimes?.find((t) => t.nodes === 200 && t.variant === "no-firewall");
    if (tfA && tfB) {
      t13.push({ target: "terraform plan -refresh=false, 200 nodes: the firewall adds ≤ 50 % to plan time", ok: tfA.planMs <= 1.5 * tfB.planMs,
        detail: `${sec(tfA.planMs)} with, ${sec(tfB.planMs)} without (+${Math.round((tfA.planMs / tfB.planMs - 1) * 100)} %)` });
    } else t13.push({ target: "terraform plan -refresh=false, 200 nodes: the firewall adds ≤ 50 % to plan time", ok: false, detail: `not measured: ${tfNote || "200 not among --sizes"}` });
    say("Targets (issue 13):");
    say();
    for (const c of t13) say(`- ${c.ok ? "MET   " : "MISSED"} ${c.target}: ${c.detail}`);
    cs.push(...t13);
    say();
    const cpu = cpus()[0]?.model ?? "unknown CPU";
    say(`Machine: ${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB RAM (${(freemem() / 2 ** 30).toFixed(1)} GiB free), Node ${process.version}, ${process.platform}; ` +
      `load average at the end ${loadavg().map((x) => x.toFixed(1)).join(" ")} (a shared machine: other jobs ran alongside).`);
    if (OUT) writeFileSync(OUT, lines.join("\n") + "\n");
    const missed = cs.filter((c) => !c.ok);
    if (missed.length) console.log(`\n${missed.length} target(s) MISSED (see above).`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
