/**
 * Prints what a synthesized app would build: stacks in deploy order, nodes and their roles, the
 * mesh, and each node's firewall rules — read from the constructs themselves, the same data the
 * resources are rendered from.
 */
import { existsSync, readFileSync } from "fs";
import { join } from "path";
import { App } from "cdktf";
import { K3sNode, KiloMesh, MeshGranularity, PeerFirewall } from "../lib";

export function summarize(app: App, outdir: string): string {
  const lines: string[] = [];
  const all = app.node.findAll();
  const manifestPath = join(outdir, "manifest.json");
  if (existsSync(manifestPath)) {
    const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
    // cdktf-cli is not a dependency (about 420 MB): say how to get it rather than assume it.
    lines.push(`Synthesized into ${outdir}/ — deploy with: npx --package cdktf-cli@0.21.0 cdktf deploy '*'`,
      "  (or `cdktf deploy '*'` after `npm install -g cdktf-cli@0.21.0`; needs terraform >= 1.4 or OpenTofu on PATH)", "", "Stacks (in deploy order):");
    for (const [name, s] of Object.entries<any>(manifest.stacks)) {
      const resources = JSON.parse(readFileSync(join(outdir, s.synthesizedStackPath), "utf8")).resource ?? {};
      const count = Object.values<any>(resources).reduce((n, byName) => n + Object.keys(byName).length, 0);
      lines.push(`  ${name.padEnd(10)} ${String(count).padStart(3)} resources${s.dependencies.length ? `, after ${s.dependencies.join(", ")}` : ""}`);
    }
  }

  const nodes = all.filter((c): c is K3sNode => c instanceof K3sNode);
  lines.push("", "Nodes:");
  for (const n of nodes) {
    const h = n.host;
    const notes = [
      h.location && `location ${h.location}`,
      h.publicAddressOnInterface === false && "public IP not on the interface (1:1 NAT)",
      h.behindNat && "behind NAT (keepalive)",
      h.ssh.bastion && `SSH via ${h.ssh.bastion.host}`,
      `ssh ${h.ssh.user ?? "root"}@${h.ssh.host ?? h.address}${h.ssh.port ? `:${h.ssh.port}` : ""}`,
    ].filter(Boolean);
    lines.push(`  ${n.nodeName.padEnd(12)} ${n.role.padEnd(6)} ${h.address.padEnd(15)} K3s ${n.version}  ${notes.join("; ")}`);
  }

  for (const mesh of all.filter((c): c is KiloMesh => c instanceof KiloMesh)) {
    const k = mesh.nodes.length;
    const tunnels = mesh.meshGranularity === MeshGranularity.FULL
      ? `${(k * (k - 1)) / 2} WireGuard tunnels (every pair of nodes)`
      : "tunnels between location leaders";
    lines.push("", `Mesh: Kilo, ${mesh.meshGranularity} granularity, ${tunnels}, UDP ${mesh.wireguardPort}, subnet ${mesh.wireguardSubnet}`);
  }

  for (const fw of all.filter((c): c is PeerFirewall => c instanceof PeerFirewall)) {
    lines.push("", "Firewall (ufw; default deny incoming and routed, allow outgoing):");
    for (const n of fw.nodes) {
      const rules = fw.rulesFor(n);
      lines.push(`  ${n.nodeName} — ${rules.length} rules`);
      const grouped = new Map<string, string[]>();
      for (const r of rules) {
        const key = `${r.action} ${r.direction === "routed" ? "routed " : ""}${r.port ?? "any"}/${r.protocol}${r.inInterface ? ` on ${r.inInterface}` : ""}`;
        grouped.set(key, [...(grouped.get(key) ?? []), r.from ?? "anywhere"]);
      }
      for (const [key, froms] of grouped) lines.push(`    ${key.padEnd(34)} from ${froms.join(", ")}`);
    }
  }
  return lines.join("\n");
}
