/**
 * `terraform validate` (the real binary) passes for every stack of both examples, on cdk.tf.json
 * exactly as cdktf synthesized it: examples/article-cluster (cluster, mesh) and
 * examples/multi-provider (cluster with DigitalOcean and Google resources, mesh). Providers come from
 * the per-run mirror (test/harness/terraform-env.ts): the real random, local and kubernetes providers,
 * and schema-only stand-ins for the example's google and digitalocean; `terraform init` runs offline and
 * locks exactly the providers each stack requires.
 *
 * The stacks read the operator's SSH key with file(pathexpand("~/.ssh/id_ed25519")), which validate
 * evaluates: HOME points at a temp dir holding a throwaway key pair made here (never committed).
 *
 * Also printed, not asserted: each command's wall time.
 */
import { execFileSync } from "child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { dataLocalCommand, provider as localProvider } from "@cdktf/provider-local";
import { App, TerraformOutput, TerraformStack, TerraformVariable } from "cdktf";
import { buildArticleCluster } from "../examples/article-cluster/main";
import { K3sServer } from "../lib";
import { shq } from "../lib/render/shell";
import { synthesizeIn, TerraformCli, TfResult } from "./harness/terraform-cli";
import { mirroredProviders, requireMirroredVersion } from "./harness/terraform-env";
import { CDKTF_LATE_VALUES as LATE } from "../lib/constructs/late-values";

const work = mkdtempSync(join(tmpdir(), "tf-validate-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const home = join(work, "home");
mkdirSync(join(home, ".ssh"), { recursive: true, mode: 0o700 });
execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "throwaway validate key", "-f", join(home, ".ssh", "id_ed25519")]);

const timings: string[] = [];

/** Synthesize with cwd in a temp dir (so the local backend's state paths land there too). */
function synth(name: string, build: (app: App) => void): string {
  const dir = join(work, name);
  mkdirSync(dir);
  synthesizeIn(dir, () => {
    const app = new App({ outdir: join(dir, "cdktf.out") });
    build(app);
    app.synth();
  });
  return join(dir, "cdktf.out");
}

/** Run a command and record its wall time. */
async function measured(label: string, run: (env: Record<string, string>) => Promise<TfResult>): Promise<TfResult> {
  const r = await run({});
  timings.push(`${label.padEnd(34)} ${String(r.durationMs).padStart(6)} ms`);
  return r;
}

afterAll(() => console.log(`terraform per-command wall time:\n${timings.join("\n")}`));

async function initAndValidate(label: string, stackDir: string): Promise<void> {
  const json = JSON.parse(readFileSync(join(stackDir, "cdk.tf.json"), "utf8"));
  const tf = new TerraformCli(stackDir, { env: { HOME: home } });
  const init = await measured(`${label}: init`, (env) => tf.init({ env }));
  expect(init.code).toBe(0);

  // The lock file holds exactly the providers the stack requires, at the mirror's version of each,
  // which is the required one where the stack pins an exact version.
  const lock = readFileSync(join(stackDir, ".terraform.lock.hcl"), "utf8");
  const locked = [...lock.matchAll(/provider "registry\.terraform\.io\/([^"]+)" \{\s*version\s*=\s*"([^"]+)"/g)].map((m) => `${m[1]}@${m[2]}`).sort();
  const required = Object.values<any>(json.terraform.required_providers)
    .map((p) => ({ name: p.source.includes("/") ? p.source : `hashicorp/${p.source}`, version: p.version as string }));
  const mirrored = (name: string) => mirroredProviders().find((p) => `${p.namespace}/${p.type}` === name)!;
  expect(locked).toEqual(required.map((r) => `${r.name}@${mirrored(r.name).version}`).sort());
  for (const r of required) if (/^\d/.test(r.version)) expect(mirrored(r.name).version).toBe(r.version);

  const v = await measured(`${label}: validate`, (env) => tf.validate({ env }));
  expect(v.stdout).toContain("Success! The configuration is valid.");
}

describe("examples/article-cluster", () => {
  const out = synth("article", (app) => buildArticleCluster(app));
  test.each(["cluster", "mesh"])("stack %s: init offline, lock file, terraform validate", async (name) => {
    await initAndValidate(`article ${name}`, join(out, "stacks", name));
  }, 180_000);

  // The cluster stack can be planned offline; the mesh stack needs a live API at plan time
  // (test/mesh-api.test.ts plans and applies it against one).
  test("stack cluster: terraform plan adds every resource; the credentials fetch is read during apply", async () => {
    const stackDir = join(out, "stacks", "cluster");
    const json = JSON.parse(readFileSync(stackDir + "/cdk.tf.json", "utf8"));
    const resources = Object.values<Record<string, unknown>>(json.resource).reduce((n, r) => n + Object.keys(r).length, 0);
    const tf = new TerraformCli(stackDir, { env: { HOME: home } });
    expect(tf.statePath!.startsWith(work)).toBe(true); // synthesized with its cwd in the temp dir
    await tf.init(); // again, so this test also runs alone
    const plan = await measured("article cluster: plan", (env) => tf.plan({ env, detailedExitcode: true }));
    expect(plan.code).toBe(2);
    expect(plan.stdout).toContain(`Plan: ${resources} to add, 0 to change, 0 to destroy.`);
    for (const name of Object.keys(json.data.local_command)) {
      expect(plan.stdout).toContain(`data.local_command.${name} will be read during apply`);
    }
  }, 180_000);
});

describe("etcd snapshots with S3 keys from sensitive variables (docs/etcd-snapshots.md)", () => {
  const ACCESS = "AKIA-STANDIN-ACCESS-7f3c";
  const SECRET = "secret-standin-value-9b1e4d";
  const out = synth("snapshots", (app) => {
    const stack = new TerraformStack(app, "cluster");
    const ssh = { privateKeyPath: "~/.ssh/id_ed25519" };
    const accessKey = new TerraformVariable(stack, "etcd_s3_access_key", { type: "string", sensitive: true });
    const secretKey = new TerraformVariable(stack, "etcd_s3_secret_key", { type: "string", sensitive: true });
    const first = new K3sServer(stack, "server-0", {
      host: { address: "203.0.113.10", ssh },
      etcdSnapshots: { scheduleCron: "0 */6 * * *", retention: 12, s3: { bucket: "k3s-backups", endpoint: "s3.example.com", accessKey: accessKey.stringValue, secretKey: secretKey.stringValue } },
    });
    for (const i of [1, 2]) new K3sServer(stack, `server-${i}`, { join: first, host: { address: `203.0.113.${10 + i}`, ssh } });
  });
  test("terraform validate and plan accept the stack; the keys' values appear nowhere in the plan's output", async () => {
    const stackDir = join(out, "stacks", "cluster");
    await initAndValidate("snapshots cluster", stackDir);
    const tf = new TerraformCli(stackDir, { env: { HOME: home } });
    const plan = await measured("snapshots cluster: plan", (env) => tf.plan({ env, detailedExitcode: true, vars: { etcd_s3_access_key: ACCESS, etcd_s3_secret_key: SECRET } }));
    expect(plan.code).toBe(2);
    expect(plan.stdout).toMatch(/Plan: \d+ to add, 0 to change, 0 to destroy\./);
    for (const value of [ACCESS, SECRET]) expect(plan.stdout + plan.stderr).not.toContain(value);
  }, 180_000);
});

const MULTI = join(__dirname, "..", "examples", "multi-provider");
const multiInstalled = existsSync(join(MULTI, "node_modules", "@cdktf", "provider-google", "package.json")) &&
  existsSync(join(MULTI, "node_modules", "@cdktf", "provider-digitalocean", "package.json"));

describe("examples/multi-provider", () => {
  if (!multiInstalled) {
    test("the example's provider packages are installed", () => {
      throw new Error("examples/multi-provider/node_modules is missing: run `npm ci --prefix examples/multi-provider`");
    });
    return;
  }
  // Loaded only once the packages are known to be there (as test/multi-provider-example.test.ts does).
  const example = require("../examples/multi-provider/main") as typeof import("../examples/multi-provider/main");
  const out = synth("multi", (app) => { example.buildMultiProviderCluster(app, example.settingsFromEnv({})); });

  test.each(["cluster", "mesh"])("stack %s: init offline, lock file, terraform validate", async (name) => {
    await initAndValidate(`multi-provider ${name}`, join(out, "stacks", name));
  }, 180_000);

  test("validate rejects a cluster stack whose key file is missing (validate really evaluates the JSON)", async () => {
    const tf = new TerraformCli(join(out, "stacks", "cluster"), { env: { HOME: join(work, "empty-home") } });
    const r = await tf.validate({ check: false });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no file exists at\s+"[^"]*empty-home\/\.ssh\/id_ed25519(\.pub)?"/);
  }, 180_000);
});

describe("shell quoting of Terraform values (lib/render/shell.ts shq), on real Terraform", () => {
  // Found by validating examples/multi-provider: a quoted token used to synthesize as replace(x, "'", "'\\''"),
  // which HCL refuses (no \' escape). The value must reach sh unchanged, whatever it holds.
  test("a token quoted with shq reaches sh as the exact value", async () => {
    const out = synth("quoting", (app) => {
      const stack = new TerraformStack(app, "quoting");
      new localProvider.LocalProvider(stack, "local");
      requireMirroredVersion(stack, "local");
      const value = new TerraformVariable(stack, "value", { type: "string" });
      const cmd = new dataLocalCommand.DataLocalCommand(stack, "echo", { command: "sh", arguments: ["-c", `printf %s ${shq(value.stringValue, LATE)}`] });
      new TerraformOutput(stack, "printed", { value: cmd.stdout });
    });
    const tf = new TerraformCli(join(out, "stacks", "quoting"));
    await tf.init();
    await tf.validate();
    const tricky = "it's a 'test'; $(echo no) `echo no` \\ \"q\" $HOME";
    await tf.apply({ vars: { value: tricky } });
    expect((await tf.outputJson()).printed.value).toBe(tricky);
  }, 180_000);
});
