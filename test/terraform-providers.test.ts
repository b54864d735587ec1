/**
 * The providers the tests run Terraform with: the real random, local and kubernetes providers built
 * by tools/build.sh, and the schema-only stand-ins (test/standin-providers/) for the multi-provider
 * example's google and digitalocean. Installed offline from the per-run filesystem mirror; the behaviours of the real
 * providers that the library relies on (a password kept across plans and redacted, local_command run
 * on every read and deferred to apply when its configuration is unknown, sensitive files with their
 * permissions) are checked here on real Terraform, so an upgrade of a provider that changes one of
 * them fails here first.
 */
import { createHash } from "crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync, writeFileSync } from "fs";
import { tmpdir } from "os";
import { join } from "path";
import { TERRAFORM_MISSING, TerraformCli } from "./harness/terraform-cli";
import { mirroredProviders, realProviders, terraformEnv } from "./harness/terraform-env";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const bcrypt = require("bcryptjs") as { compareSync(s: string, hash: string): boolean };

const provider = (type: string) => mirroredProviders().find((p) => p.type === type)!;
const requiredProviders = (...types: string[]) => ({
  required_providers: Object.fromEntries(types.map((t) => [t, { source: `${provider(t).namespace}/${t}`, version: provider(t).version }])),
});

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function scratch(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), `providers-${prefix}-`));
  dirs.push(d);
  return d;
}

/** A stack directory holding `json` as cdk.tf.json; its state stays in the directory. */
function stack(json: object, env: Record<string, string> = {}): TerraformCli {
  const dir = scratch("stack");
  writeFileSync(join(dir, "cdk.tf.json"), JSON.stringify(json, null, 2));
  return new TerraformCli(dir, { env });
}

async function resourceValues(tf: TerraformCli, address: string): Promise<any> {
  const show = await tf.showJson();
  const r = (show.values?.root_module?.resources ?? []).find((x: any) => x.address === address);
  return r?.values;
}

const TIMEOUT = 180_000;

describe("installation", () => {
  test("init works offline from the mirror and writes .terraform.lock.hcl with the real providers' hashes", async () => {
    const tf = stack({ terraform: requiredProviders(...mirroredProviders().map((p) => p.type)) });
    const r = await tf.init();
    for (const p of mirroredProviders()) expect(r.stdout).toContain(`Installed ${p.namespace}/${p.type} v${p.version} (unauthenticated)`);
    const lock = readFileSync(join(tf.stackDir, ".terraform.lock.hcl"), "utf8");
    for (const p of mirroredProviders()) {
      expect(lock).toMatch(new RegExp(`provider "registry.terraform.io/${p.namespace}/${p.type}" \\{\\s*version\\s*=\\s*"${p.version.replace(/\./g, "\\.")}"[^}]*h1:`));
    }
    // Terraform's h1: hash of an unpacked package: sha256 over "<sha256 hex>  <file name>\n" for each
    // file. The lock holds the hash of the binary tools/build.sh built, not of a wrapper around it.
    expect(realProviders().map((p) => p.type).sort()).toEqual(["kubernetes", "local", "random"]);
    for (const p of realProviders()) {
      const name = `terraform-provider-${p.type}_v${p.version}`;
      const line = `${createHash("sha256").update(readFileSync(p.binary)).digest("hex")}  ${name}\n`;
      const h1 = `h1:${createHash("sha256").update(line).digest("base64")}`;
      expect(lock).toContain(`"${h1}"`);
      expect(readFileSync(p.binary).subarray(0, 4).toString("latin1")).toBe("\x7fELF");
    }
    // The mirror and its CLI config are the only source: nothing else can be installed.
    expect(readFileSync(terraformEnv().cliConfigFile, "utf8")).not.toMatch(/direct/);
    const other = stack({ terraform: { required_providers: { random: { source: "hashicorp/random", version: "3.6.0" } } } });
    const bad = await other.init({ check: false });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/no available releases match|Failed to query available provider packages/);
  }, TIMEOUT);

  test("a lock file written by init is accepted by a second init of the same stack", async () => {
    const tf = stack({ terraform: requiredProviders("random") });
    await tf.init();
    const lock = readFileSync(join(tf.stackDir, ".terraform.lock.hcl"), "utf8");
    await tf.init();
    expect(readFileSync(join(tf.stackDir, ".terraform.lock.hcl"), "utf8")).toBe(lock);
  }, TIMEOUT);
});

describe("the wrapper", () => {
  test("says what is missing when terraform is not on PATH", () => {
    const path = process.env.PATH;
    process.env.PATH = "/nonexistent";
    try {
      expect(() => new TerraformCli(scratch("nopath"))).toThrow(TERRAFORM_MISSING);
    } finally {
      process.env.PATH = path;
    }
    expect(TERRAFORM_MISSING).toMatch(/the tests need the terraform binary \(1\.11\.4\) from the machine image on PATH/);
  });

  test("a timeout kills terraform and the providers it started, and says so", async () => {
    const tf = stack({ terraform: requiredProviders("local"), data: { local_command: { slow: { command: "sleep", arguments: ["30"] } } } });
    await tf.init();
    // terraform, the provider and the command all run in the stack directory.
    const inStack = () => readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
      try { return readlinkSync(`/proc/${p}/cwd`) === tf.stackDir; } catch { return false; }
    });
    const started = Date.now();
    const plan = tf.plan({ timeoutMs: 6000 });
    await new Promise((r) => setTimeout(r, 4000));
    expect(inStack().length).toBeGreaterThanOrEqual(3);
    await expect(plan).rejects.toThrow(/timed out after 6000 ms/);
    expect(Date.now() - started).toBeLessThan(15_000);
    await new Promise((r) => setTimeout(r, 1500));
    expect(inStack()).toEqual([]);
  }, TIMEOUT);
});

describe("the wrapper's plan options", () => {
  test("a saved plan (out) is shown with show -json and applied as planned; targets limit plan and apply", async () => {
    const tf = stack({
      resource: { terraform_data: { a: { triggers_replace: { k: "a" } }, b: { triggers_replace: { k: "b" } } } },
    });
    await tf.init();
    const planned = await tf.plan({ out: "a.tfplan", targets: ["terraform_data.a"] });
    expect(planned.stdout).toContain("Plan: 1 to add");
    const shown = await tf.showJson("a.tfplan");
    expect(shown.resource_changes.map((c: any) => [c.address, c.change.actions])).toEqual([["terraform_data.a", ["create"]]]);
    await tf.apply({ planFile: "a.tfplan" });
    expect((await tf.showJson()).values.root_module.resources.map((r: any) => r.address)).toEqual(["terraform_data.a"]);
    const rest = await tf.plan({ refresh: false, detailedExitcode: true });
    expect(rest.code).toBe(2);
    expect(rest.stdout).not.toContain("Refreshing state");
    expect(rest.stdout).toContain("Plan: 1 to add");
    await tf.apply({ parallelism: 1 });
    expect((await tf.plan({ detailedExitcode: true })).code).toBe(0);
    await tf.destroy();
  }, TIMEOUT);
});

describe("random_password", () => {
  const json = {
    terraform: requiredProviders("random"),
    variable: { k: { type: "string" } },
    resource: {
      random_password: {
        p: { length: 24, special: false, min_upper: 4, min_numeric: 5, keepers: { k: "${var.k}" } },
      },
    },
  };

  test("generated once, kept across plans and applies, redacted in output, replaced when keepers change", async () => {
    const tf = stack(json);
    await tf.init();
    const plan = await tf.plan({ vars: { k: "1" } });
    expect(plan.stdout).toMatch(/\+ result\s+= \(sensitive value\)/);
    expect(plan.stdout).toMatch(/\+ bcrypt_hash\s+= \(sensitive value\)/);
    const apply = await tf.apply({ vars: { k: "1" } });
    const v1 = await resourceValues(tf, "random_password.p");
    expect(v1.result).toHaveLength(24);
    expect(v1.result).toMatch(/^[A-Za-z0-9]+$/); // special = false
    expect((v1.result.match(/[A-Z]/g) ?? []).length).toBeGreaterThanOrEqual(4);
    expect((v1.result.match(/[0-9]/g) ?? []).length).toBeGreaterThanOrEqual(5);
    expect(bcrypt.compareSync(v1.result, v1.bcrypt_hash)).toBe(true);
    expect(v1.id).toBe("none");
    expect(apply.stdout + apply.stderr).not.toContain(v1.result);

    // Stable: a plan right after apply has no changes, a second apply changes nothing.
    const again = await tf.plan({ vars: { k: "1" }, detailedExitcode: true });
    expect(again.code).toBe(0);
    const apply2 = await tf.apply({ vars: { k: "1" } });
    expect(apply2.stdout).toContain("Resources: 0 added, 0 changed, 0 destroyed");
    expect((await resourceValues(tf, "random_password.p")).result).toBe(v1.result);

    // keepers changed: replaced, with a new result.
    const change = await tf.plan({ vars: { k: "2" }, detailedExitcode: true });
    expect(change.code).toBe(2);
    expect(change.stdout).toMatch(/random_password\.p must be replaced/);
    expect(change.stdout).toMatch(/keepers\s+= \{ # forces replacement\s+~ "k" = "1" -> "2"/);
    await tf.apply({ vars: { k: "2" } });
    const v2 = await resourceValues(tf, "random_password.p");
    expect(v2.result).toHaveLength(24);
    expect(v2.result).not.toBe(v1.result);

    const destroy = await tf.destroy({ vars: { k: "2" } });
    expect(destroy.stdout).toContain("Resources: 1 destroyed");
    expect(destroy.stdout + destroy.stderr).not.toContain(v2.result);
  }, TIMEOUT);

  test("invalid arguments are refused at validate, as the real provider's validators do", async () => {
    const tf = stack({ terraform: requiredProviders("random"), resource: { random_password: { p: { length: 3, min_upper: 2, min_lower: 2 } } } });
    await tf.init();
    const r = await tf.validate({ check: false });
    expect(r.code).toBe(1);
    expect(r.stderr.replace(/\s+/g, " ")).toMatch(/length value must be at least sum of min_upper \+ min_lower \+ min_numeric \+ min_special, got: 3/);
  }, TIMEOUT);
});

describe("local_command data source", () => {
  test("runs with arguments, stdin and working directory on every read; deferred to apply when its config is unknown", async () => {
    const work = scratch("cmd");
    const counter = join(work, "runs");
    // Prints its first argument, its working directory and its stdin; counts its runs.
    const script = 'printf "%s|%s|" "$1" "$(pwd)"; cat; echo run >> "$2"';
    const tf = stack({
      terraform: requiredProviders("local", "random"),
      resource: { random_password: { later: { length: 8 } } },
      data: {
        local_command: {
          now: { command: "sh", arguments: ["-c", script, "sh", "first arg", counter], stdin: "from stdin", working_directory: work },
          // Its stdin is unknown until random_password.later exists: read during apply.
          deferred: { command: "sh", arguments: ["-c", 'cat >/dev/null; echo deferred >> "$1"; printf ok', "sh", counter], stdin: "${random_password.later.result}" },
          failing: { command: "sh", arguments: ["-c", "echo oops >&2; exit 3"], allow_non_zero_exit_code: true },
        },
      },
      output: {
        now: { value: "${data.local_command.now.stdout}" },
        now_stderr: { value: "${data.local_command.now.stderr}" },
        deferred: { value: "${data.local_command.deferred.stdout}" },
        failing_code: { value: "${data.local_command.failing.exit_code}" },
        failing_stderr: { value: "${data.local_command.failing.stderr}" },
      },
    });
    await tf.init();
    const runs = () => (existsSync(counter) ? readFileSync(counter, "utf8").trim().split("\n") : []);

    const plan = await tf.plan();
    expect(runs()).toEqual(["run"]); // read at plan time: its configuration is known
    expect(plan.stdout).toMatch(/data\.local_command\.deferred will be read during apply/);
    expect(plan.stdout).toContain(`now            = "first arg|${work}|from stdin"`);

    await tf.apply();
    // Read again during apply's own plan; the deferred one once, during apply.
    expect(runs()).toEqual(["run", "run", "deferred"]);
    const out = await tf.outputJson();
    expect(out.now.value).toBe(`first arg|${work}|from stdin`);
    expect(out.now_stderr).toBeUndefined(); // empty output is null (and a null output is not listed), as upstream
    expect(out.deferred.value).toBe("ok");
    expect(out.failing_code.value).toBe(3);
    expect(out.failing_stderr.value).toBe("oops\n");

    // Every plan reads it again.
    const again = await tf.plan({ detailedExitcode: true });
    expect(again.code).toBe(0);
    expect(runs()).toEqual(["run", "run", "deferred", "run", "deferred"]);
    await tf.destroy();
  }, TIMEOUT);

  test("a non-zero exit fails the read unless allowed; a missing command fails the lookup", async () => {
    const tf = stack({
      terraform: requiredProviders("local"),
      data: { local_command: { bad: { command: "sh", arguments: ["-c", "echo broken >&2; exit 4"] } } },
    });
    await tf.init();
    const r = await tf.plan({ check: false });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Command Execution Failed/);
    expect(r.stderr).toMatch(/Command Error: broken/);
    const missing = stack({
      terraform: requiredProviders("local"),
      data: { local_command: { x: { command: "no-such-command-standin" } } },
    });
    await missing.init();
    const m = await missing.plan({ check: false });
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/Command Lookup Failed/);
  }, TIMEOUT);
});

describe("local files", () => {
  test("local_sensitive_file and local_file write with the requested permissions, redact content, and are recreated when gone", async () => {
    const work = scratch("files");
    const secretPath = join(work, "a", "b", "secret");
    const plainPath = join(work, "plain.txt");
    const readPath = join(work, "given");
    writeFileSync(readPath, "given content", { mode: 0o600 });
    const tf = stack({
      terraform: requiredProviders("local"),
      resource: {
        local_sensitive_file: { s: { filename: secretPath, content: "top secret value", file_permission: "0600", directory_permission: "0750" } },
        local_file: { f: { filename: plainPath, content: "plain content" } },
      },
      data: { local_sensitive_file: { given: { filename: readPath } } },
      output: {
        given: { value: "${data.local_sensitive_file.given.content}", sensitive: true },
        sha: { value: "${local_sensitive_file.s.content_sha256}" },
      },
    });
    await tf.init();
    const plan = await tf.plan();
    expect(plan.stdout).toMatch(/\+ content\s+= \(sensitive value\)/);
    expect(plan.stdout).toMatch(/\+ content\s+= "plain content"/); // local_file's content is not sensitive
    expect(plan.stdout).not.toContain("top secret value");
    expect(plan.stdout).not.toContain("given content");
    const apply = await tf.apply();
    expect(apply.stdout + apply.stderr).not.toContain("top secret value");

    expect(readFileSync(secretPath, "utf8")).toBe("top secret value");
    expect(statSync(secretPath).mode & 0o777).toBe(0o600);
    expect(statSync(join(work, "a", "b")).mode & 0o777).toBe(0o750 & ~process.umask());
    expect(statSync(join(work, "a")).mode & 0o777).toBe(0o750 & ~process.umask());
    // local_file's default is 0777, less the umask (os.WriteFile).
    expect(statSync(plainPath).mode & 0o777).toBe(0o777 & ~process.umask());
    const out = await tf.outputJson();
    expect(out.given).toMatchObject({ value: "given content", sensitive: true });
    expect(out.sha.value).toBe(createHash("sha256").update("top secret value").digest("hex"));

    expect((await tf.plan({ detailedExitcode: true })).code).toBe(0);

    // Gone: the read notices, the plan creates it again.
    unlinkSync(secretPath);
    const gone = await tf.plan({ detailedExitcode: true });
    expect(gone.code).toBe(2);
    expect(gone.stdout).toMatch(/local_sensitive_file\.s will be created/);
    await tf.apply();
    expect(readFileSync(secretPath, "utf8")).toBe("top secret value");

    // Changed outside Terraform: replaced too (the id is the content's SHA-1).
    writeFileSync(plainPath, "edited");
    const edited = await tf.plan({ detailedExitcode: true });
    expect(edited.code).toBe(2);
    expect(edited.stdout).toMatch(/local_file\.f will be created/);
    await tf.apply();
    expect(readFileSync(plainPath, "utf8")).toBe("plain content");

    await tf.destroy();
    expect(existsSync(secretPath)).toBe(false);
    expect(existsSync(plainPath)).toBe(false);
  }, TIMEOUT);

  test("a changed file_permission replaces the file", async () => {
    const work = scratch("perm");
    mkdirSync(join(work, "d"));
    const file = join(work, "d", "f");
    const json = (perm: string) => ({
      terraform: requiredProviders("local"),
      resource: { local_sensitive_file: { s: { filename: file, content: "x", file_permission: perm } } },
    });
    const tf = stack(json("0600"));
    await tf.init();
    await tf.apply();
    expect(statSync(file).mode & 0o777).toBe(0o600);
    writeFileSync(join(tf.stackDir, "cdk.tf.json"), JSON.stringify(json("0640")));
    const plan = await tf.plan({ detailedExitcode: true });
    expect(plan.stdout).toMatch(/file_permission\s+= "0600" -> "0640" # forces replacement/);
    await tf.apply();
    expect(statSync(file).mode & 0o777).toBe(0o640 & ~process.umask());
    await tf.destroy();
  }, TIMEOUT);
});

describe("kubernetes", () => {
  const json = {
    terraform: requiredProviders("kubernetes"),
    // Nothing listens there: validate needs no API, plan does.
    provider: { kubernetes: [{ host: "https://127.0.0.1:9", client_key: "k", client_certificate: "c", cluster_ca_certificate: "ca" }] },
    resource: {
      kubernetes_manifest: { m: { manifest: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "x", namespace: "default" } }, field_manager: { name: "t" } } },
      kubernetes_annotations: { a: { api_version: "v1", kind: "Node", metadata: { name: "n" }, annotations: { k: "v" }, field_manager: "t" } },
    },
  };

  test("validate passes on the resources the mesh stack uses and rejects an argument the schema lacks; planning needs the API", async () => {
    const tf = stack(json);
    await tf.init();
    await tf.validate();
    const wrong = stack({ ...json, resource: { kubernetes_annotations: { a: { ...json.resource.kubernetes_annotations.a, labels: { x: "y" } } } } });
    await wrong.init();
    const r = await wrong.validate({ check: false });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/No argument or block type is named "labels"/);
    // kubernetes_manifest asks the API server for the object's type at plan time.
    const plan = await tf.plan({ check: false });
    expect(plan.code).toBe(1);
  }, TIMEOUT);
});
