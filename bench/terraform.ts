/**
 * `terraform validate` and `terraform plan -refresh=false` of the bench's cluster stack with the
 * real terraform binary (1.11.4) and the real random and local providers (test/harness/terraform-cli.ts), with
 * and without PeerFirewall, so the firewall's share of plan time shows. Only the cluster stack:
 * the mesh stack needs a running Kubernetes API to plan. The stacks read the SSH key with
 * file(pathexpand("~/.ssh/id_ed25519")): HOME points at a temp dir with a throwaway key.
 */
import { execFileSync } from "child_process";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App } from "cdktf";
import { buildCluster, Variant } from "./cluster";
import { synthesizeIn, TerraformCli } from "../test/harness/terraform-cli";

export interface TerraformTimes { nodes: number; variant: Variant; jsonBytes: number; validateMs: number; planMs: number }

export async function measureTerraform(sizes: number[]): Promise<TerraformTimes[]> {
  const work = mkdtempSync(join(tmpdir(), "bench-tf-"));
  try {
    const home = join(work, "home");
    mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "throwaway bench key", "-f", join(home, ".ssh", "id_ed25519")]);
    const out: TerraformTimes[] = [];
    for (const nodes of sizes) {
      for (const variant of ["base", "no-firewall"] as Variant[]) {
        const dir = join(work, `${variant}-${nodes}`);
        mkdirSync(dir);
        synthesizeIn(dir, () => {
          const app = new App({ outdir: join(dir, "cdktf.out") });
          buildCluster(app, { nodes, servers: 1 }, variant);
          app.synth();
        });
        const stackDir = join(dir, "cdktf.out", "stacks", "cluster");
        const tf = new TerraformCli(stackDir, { env: { HOME: home }, timeoutMs: 900_000 });
        await tf.init();
        const v = await tf.validate();
        const p = await tf.plan({ refresh: false });
        out.push({ nodes, variant, jsonBytes: statSync(join(stackDir, "cdk.tf.json")).size, validateMs: v.durationMs, planMs: p.durationMs });
      }
    }
    return out;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
