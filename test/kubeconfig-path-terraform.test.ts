/**
 * kubeconfigPath on the real `terraform` binary: where the file lands when Terraform runs, as
 * `cdktf deploy` runs it, in the stack's directory under cdktf.out.
 *
 * The file resource is K3sServer's own wiring (a local_sensitive_file whose filename comes from
 * localPath, the function K3sServer uses: test/server-outputs.test.ts checks that K3sServer's
 * filename is exactly that), with a literal content: a whole K3sServer cannot be applied here,
 * because its content comes from the kubeconfig fetch over SSH. Providers are the stand-ins
 * (test/standin-providers), the binary is the real terraform 1.11.4.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { App, TerraformStack } from "cdktf";
import { provider as localProvider, sensitiveFile } from "@cdktf/provider-local";
import { localPath } from "../lib/constructs/local-path";
import { synthesizeIn, TerraformCli } from "./harness/terraform-cli";
import { requireMirroredVersion } from "./harness/terraform-env";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A project directory and a home directory, both temporary. */
function scratch(): { project: string; home: string } {
  const root = mkdtempSync(join(tmpdir(), "kubeconfig-path-"));
  dirs.push(root);
  const project = join(root, "project");
  const home = join(root, "home");
  mkdirSync(project);
  mkdirSync(home);
  return { project, home };
}

/** Synthesize, in `project` as cdktf does, one stack writing a file to each of `paths` (given as filename values). */
function synthFiles(project: string, filenames: Record<string, () => string>): string {
  return synthesizeIn(project, () => {
    const app = new App({ outdir: join(project, "cdktf.out") });
    const stack = new TerraformStack(app, "cluster");
    new localProvider.LocalProvider(stack, "local");
    requireMirroredVersion(stack, "local");
    for (const [id, filename] of Object.entries(filenames)) {
      new sensitiveFile.SensitiveFile(stack, id, { filename: filename(), content: `kubeconfig for ${id}\n`, filePermission: "0600", directoryPermission: "0700" });
    }
    app.synth();
    return join(project, "cdktf.out", "stacks", "cluster");
  });
}

test("~ lands in the deploying user's home and a relative path in the project, not under cdktf.out", async () => {
  const { project, home } = scratch();
  const stackDir = synthesizeIn(project, () => synthFiles(project, {
    home: () => localPath("~/.kube/config"),
    relative: () => localPath("kubeconfig.yaml"),
    // What K3sServer wrote before: the path as given.
    rawHome: () => "~/.kube/raw",
    rawRelative: () => "raw.yaml",
  }));
  const tf = new TerraformCli(stackDir, { env: { HOME: home } });
  await tf.init();
  await tf.apply();

  const homeFile = join(home, ".kube", "config");
  expect(existsSync(homeFile)).toBe(true);
  expect(statSync(homeFile).mode & 0o777).toBe(0o600);
  expect(existsSync(join(project, "kubeconfig.yaml"))).toBe(true);
  expect(existsSync(join(stackDir, "kubeconfig.yaml"))).toBe(false);

  // The old behaviour, for contrast: a directory literally named "~" and a file beside the state.
  expect(existsSync(join(stackDir, "~", ".kube", "raw"))).toBe(true);
  expect(existsSync(join(stackDir, "raw.yaml"))).toBe(true);
  expect(existsSync(join(home, ".kube", "raw"))).toBe(false);
}, 180_000);
