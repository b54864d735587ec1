#!/usr/bin/env node
/**
 * cdktf-k3s-kilo-report: the summary and the picture of any app built with this library, read
 * from its synthesized output alone (no need to run the app again).
 *
 *   npx cdktf-k3s-kilo-report [cdktf.out] [--out DIR] [--title TEXT]
 *
 * Prints the stacks in deploy order and, for each K3sServer's cluster, its nodes, mesh and firewall
 * sizes; writes cluster-report.{md,dot,svg} (one set per cluster, suffixed when there are several)
 * into DIR (default: the cdktf.out directory). Each cluster is read from what K3sServer embeds in
 * its stack under "//" (ignored by Terraform); firewall rules are recomputed from the firewall's
 * inputs with the function PeerFirewall renders them from.
 *
 * Also prints the synth warnings kept in manifest.json to stderr, each once (cdktf records them
 * there; only its CLI prints them).
 *
 * SVG needs Graphviz: @viz-js/viz when installed (`npm install @viz-js/viz`), else `dot` on PATH;
 * without either the .dot is written and the command says how to get the SVG.
 */
import { spawnSync } from "child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "fs";
import { join, resolve } from "path";
import { EmbeddedClusterReport, expandEmbeddedReport, firewallMatrix, meshTunnels, renderDot, renderMarkdown } from "../render/cluster-report";

const KEY = "cdktf-k3s-kilo";

interface Args { readonly outdir: string; readonly reportDir: string; readonly title?: string }

function parseArgs(argv: string[]): Args | string {
  let outdir: string | undefined;
  let reportDir: string | undefined;
  let title: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--help" || a === "-h") return "usage: cdktf-k3s-kilo-report [CDKTF_OUT_DIR (default cdktf.out)] [--out DIR] [--title TEXT]";
    else if (a === "--out") reportDir = argv[++i];
    else if (a === "--title") title = argv[++i];
    else if (a.startsWith("-")) return `unknown option ${a}; see --help`;
    else if (outdir === undefined) outdir = a;
    else return `one cdktf.out directory only (got ${outdir} and ${a})`;
  }
  const out = resolve(outdir ?? process.env.CDKTF_OUTDIR ?? "cdktf.out");
  return { outdir: out, reportDir: resolve(reportDir ?? out), title };
}

/** SVG from DOT: @viz-js/viz if the project has it, else Graphviz's `dot`; undefined when neither is there. */
async function toSvg(dot: string): Promise<string | undefined> {
  try {
    // A variable, so TypeScript does not need the optional package at compile time.
    const name = "@viz-js/viz";
    const viz = await (await import(name)).instance();
    return viz.renderString(dot, { format: "svg", engine: "circo" });
  } catch {
    const r = spawnSync("dot", ["-Kcirco", "-Tsvg"], { input: dot, encoding: "utf8" });
    return r.status === 0 ? r.stdout : undefined;
  }
}

/**
 * The synth warnings (and error annotations) cdktf kept in manifest.json, to stderr, each once, as
 * the cdktf CLI prints them: `WARN [construct path]: message`.
 */
function printAnnotations(manifest: { stacks?: Record<string, { annotations?: Array<{ level?: string; constructPath?: string; message?: unknown }> }> }): void {
  const seen = new Set<string>();
  const levels: Record<string, string> = { "@cdktf/warn": "WARN", "@cdktf/error": "ERROR" };
  for (const s of Object.values(manifest.stacks ?? {})) {
    for (const a of s.annotations ?? []) {
      const level = levels[a.level ?? ""];
      const text = `${level} [${a.constructPath}]: ${String(a.message).replace(/\n/g, "\n    ")}`;
      if (!level || seen.has(text)) continue;
      seen.add(text);
      console.error(text);
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === "string") { console.error(args); return args.startsWith("usage") ? 0 : 2; }
  const manifestPath = join(args.outdir, "manifest.json");
  if (!existsSync(manifestPath)) {
    console.error(`${manifestPath} not found: synthesize first (cdktf synth, or run your app), or give the output directory`);
    return 1;
  }
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  printAnnotations(manifest);
  const lines = [`Synthesized app in ${args.outdir}`, "", "Stacks (in deploy order):"];
  const clusters: Array<{ key: string; report: EmbeddedClusterReport }> = [];
  for (const [name, s] of Object.entries<any>(manifest.stacks)) {
    const json = JSON.parse(readFileSync(join(args.outdir, s.synthesizedStackPath), "utf8"));
    const count = Object.values<any>(json.resource ?? {}).reduce((n, byName) => n + Object.keys(byName).length, 0);
    lines.push(`  ${name.padEnd(12)} ${String(count).padStart(4)} resources${s.dependencies?.length ? `, after ${s.dependencies.join(", ")}` : ""}`);
    for (const [key, report] of Object.entries<EmbeddedClusterReport>(json["//"]?.[KEY] ?? {})) clusters.push({ key, report });
  }
  if (clusters.length === 0) {
    lines.push("", "No K3sServer in this app (nothing from cdktf-k3s-kilo, or synthesized by a version before 0.1): no report.");
    console.log(lines.join("\n"));
    return 1;
  }
  mkdirSync(args.reportDir, { recursive: true });
  const written: string[] = [];
  let missingSvg = false;
  for (const { key, report } of clusters) {
    const data = expandEmbeddedReport(report, args.title);
    const tunnels = meshTunnels(data);
    lines.push("", `${data.title}:`);
    for (const n of data.nodes) {
      const notes = [n.location, !n.publicAddressOnInterface && "1:1 NAT", n.behindNat && "behind NAT", n.persistentKeepalive && `keepalive ${n.persistentKeepalive}s`, n.sshVia && `SSH via ${n.sshVia}`]
        .filter(Boolean).join(", ");
      lines.push(`  ${n.name.padEnd(14)} ${n.role.padEnd(6)} ${n.address}${notes ? `  (${notes})` : ""}`);
    }
    if (data.mesh) lines.push(`  mesh: Kilo, ${data.mesh.granularity} granularity, ${tunnels.length} WireGuard tunnels, UDP ${data.mesh.wireguardPort}, subnet ${data.mesh.wireguardSubnet}`);
    else lines.push("  mesh: none (no KiloMesh for this server)");
    if (data.firewalls.length) {
      lines.push(`  firewall: ${data.firewalls.map((f) => `${f.node} ${f.rules.length} rules`).join(", ")}; ${firewallMatrix(data).length} incoming allowances`);
    } else lines.push("  firewall: none (no PeerFirewall over these nodes)");
    const suffix = clusters.length > 1 ? `-${key.replace(/[^A-Za-z0-9_-]+/g, "-")}` : "";
    const base = join(args.reportDir, `cluster-report${suffix}`);
    const dot = renderDot(data);
    writeFileSync(`${base}.md`, renderMarkdown(data));
    writeFileSync(`${base}.dot`, dot);
    written.push(`${base}.md`, `${base}.dot`);
    const svg = await toSvg(dot);
    if (svg) { writeFileSync(`${base}.svg`, svg); written.push(`${base}.svg`); } else missingSvg = true;
  }
  lines.push("", `Report: ${written.join(", ")}`);
  if (missingSvg) lines.push("No SVG: install @viz-js/viz in this project (npm install --save-dev @viz-js/viz) or Graphviz (dot), or open the .dot in any Graphviz viewer.");
  console.log(lines.join("\n"));
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => { console.error(e); process.exitCode = 1; });
}
