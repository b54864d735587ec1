// @ts-check
/**
 * Stand-in for registry.terraform.io/hashicorp/local 2.6.1. Schemas and behaviour from
 * hashicorp/terraform-provider-local at v2.6.1, internal/provider/:
 *   resource_local_file.go, resource_local_sensitive_file.go   (resources local_file, local_sensitive_file)
 *   data_source_local_file.go, data_source_local_sensitive_file.go, data_source_local_command.go
 *   provider.go (empty provider schema, genFileChecksums)
 *   ../localtypes/file_permission_type.go (file/directory permission validation)
 * Not served: the provider function `direxists` and the `local_command` action (protocol features
 * our stacks do not use; actions are not in plugin protocol 6.8 anyway).
 */
const { createHash } = require("crypto");
const { spawn } = require("child_process");
const { accessSync, constants, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } = require("fs");
const { delimiter, dirname, join } = require("path");
const { serve, error, UNKNOWN } = require("./lib/server");

/** @param {string} name @param {any} [extra] */
const str = (name, extra = {}) => ({ name, type: "string", ...extra });
const CHECKSUMS = ["content_md5", "content_sha1", "content_sha256", "content_base64sha256", "content_sha512", "content_base64sha512"]
  .map((n) => str(n, { computed: true }));

/** @param {boolean} sensitiveFile */
function fileResourceSchema(sensitiveFile) {
  const perm = sensitiveFile ? "0700" : "0777";
  return {
    attributes: [
      str("filename", { required: true }),
      str("content", { optional: true, sensitive: sensitiveFile }),
      str("content_base64", { optional: true, sensitive: sensitiveFile }),
      str("source", { optional: true }),
      str("file_permission", { optional: true, computed: true, description: `Default value is "${perm}".` }),
      str("directory_permission", { optional: true, computed: true, description: `Default value is "${perm}".` }),
      str("id", { computed: true }),
      ...(sensitiveFile ? [] : [str("sensitive_content", { optional: true, sensitive: true, deprecated: true })]),
      ...CHECKSUMS,
    ],
  };
}

/** @param {Buffer} data */
function checksums(data) {
  const h = (/** @type {string} */ alg) => createHash(alg).update(data);
  return {
    content_md5: h("md5").digest("hex"),
    content_sha1: h("sha1").digest("hex"),
    content_sha256: h("sha256").digest("hex"),
    content_base64sha256: h("sha256").digest("base64"),
    content_sha512: h("sha512").digest("hex"),
    content_base64sha512: h("sha512").digest("base64"),
  };
}

/** FilePermissionValue.ValidateAttribute. @param {any} c @param {string} attr */
function validatePermission(c, attr) {
  const fp = c[attr];
  if (fp === null || fp === UNKNOWN) return [];
  if (fp.length < 3 || fp.length > 4) {
    return [error("Invalid File Permission String Value", `bad mode permission: string length should be 3 or 4 digits: ${fp}`, attr)];
  }
  if (!/^[0-7]+$/.test(fp) || parseInt(fp, 8) > 0o777) {
    return [error("Invalid File Permission String Value", `bad mode permission: string must be expressed in octal numeric notation: ${fp}`, attr)];
  }
  return [];
}

/** A file resource (local_file or local_sensitive_file). @param {boolean} sensitiveFile */
function fileResource(sensitiveFile) {
  const schema = fileResourceSchema(sensitiveFile);
  const sources = sensitiveFile ? ["content", "content_base64", "source"] : ["content", "sensitive_content", "content_base64", "source"];
  const perm = sensitiveFile ? "0700" : "0777";
  /** @type {import("./lib/server").ResourceType} */
  const r = {
    version: 0,
    schema,
    defaults: { file_permission: perm, directory_permission: perm },
    // Every argument is RequiresReplace; the computed values follow from them.
    replaceOn: ["filename", ...sources, "file_permission", "directory_permission"],
    validate(c) {
      const d = [...validatePermission(c, "file_permission"), ...validatePermission(c, "directory_permission")];
      // stringvalidator.ExactlyOneOf over the content arguments (unknown counts as set).
      const set = sources.filter((k) => c[k] !== null);
      if (set.length !== 1) {
        d.push(error("Invalid Attribute Combination", `Exactly one of these attributes must be configured: [${sources.join(",")}]`));
      }
      return d;
    },
    create(planned) {
      /** @type {Buffer} */
      let content;
      if (planned.content_base64 !== null) content = Buffer.from(planned.content_base64, "base64");
      else if (planned.source !== null) content = readFileSync(planned.source);
      else if (!sensitiveFile && planned.sensitive_content !== null) content = Buffer.from(planned.sensitive_content, "utf8");
      else content = Buffer.from(planned.content ?? "", "utf8");
      const destination = planned.filename;
      const dir = dirname(destination);
      // As upstream: the directory mode applies only when the directory is created (os.MkdirAll),
      // the file mode only when the file is created (os.WriteFile); the umask applies to both.
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: parseInt(planned.directory_permission, 8) });
      writeFileSync(destination, content, { mode: parseInt(planned.file_permission, 8) });
      const sums = checksums(content);
      return { ...planned, ...sums, id: sums.content_sha1 };
    },
    read(state) {
      // A file that is gone or was changed outside Terraform is removed from state: Terraform plans
      // to create it again.
      try {
        const data = readFileSync(state.filename);
        return createHash("sha1").update(data).digest("hex") === state.id ? state : null;
      } catch (e) {
        if (/** @type {NodeJS.ErrnoException} */ (e).code === "ENOENT") return null;
        throw e;
      }
    },
    delete(prior) {
      rmSync(prior.filename, { force: true });
    },
  };
  return r;
}

/** @param {boolean} sensitive */
function fileDataSource(sensitive) {
  return {
    schema: {
      attributes: [
        str("filename", { required: true }),
        str("content", { computed: true, sensitive }),
        str("content_base64", { computed: true, sensitive }),
        str("id", { computed: true }),
        ...CHECKSUMS,
      ],
    },
    /** @param {any} config */
    read(config) {
      let content;
      try {
        content = readFileSync(config.filename);
      } catch (e) {
        return { state: null, diagnostics: [error("Read local file data source error", `The file at given path cannot be read.\n\n+Original Error: ${/** @type {Error} */ (e).message}`)] };
      }
      const sums = checksums(content);
      return {
        state: { filename: config.filename, content: content.toString("utf8"), content_base64: content.toString("base64"), id: sums.content_sha1, ...sums },
      };
    },
  };
}

/** exec.LookPath: a name with a slash is used as is, others are searched on PATH. @param {string} command */
function lookPath(command) {
  const candidates = command.includes("/") ? [command] : (process.env.PATH ?? "").split(delimiter).filter(Boolean).map((d) => join(d, command));
  for (const c of candidates) {
    try {
      if (statSync(c).isFile()) { accessSync(c, constants.X_OK); return c; }
    } catch { /* next */ }
  }
  throw new Error(command.includes("/") ? `fork/exec ${command}: no such file or executable` : `exec: "${command}": executable file not found in $PATH`);
}

const localCommand = {
  schema: {
    attributes: [
      str("command", { required: true }),
      { name: "arguments", type: ["list", "string"], optional: true },
      str("stdin", { optional: true }),
      str("working_directory", { optional: true }),
      { name: "allow_non_zero_exit_code", type: "bool", optional: true },
      { name: "exit_code", type: "number", computed: true },
      str("stdout", { computed: true }),
      str("stderr", { computed: true }),
    ],
  },
  /** Runs the command on every read, as upstream. @param {any} config */
  read(config) {
    /** @type {{ state: any, diagnostics: any[] }} */
    const out = { state: { ...config, exit_code: null, stdout: null, stderr: null }, diagnostics: [] };
    try {
      lookPath(config.command);
    } catch (e) {
      out.state = null;
      out.diagnostics.push(error("Command Lookup Failed", `The data source received an unexpected error while attempting to find the command.\n\nCommand: ${config.command}\nError: ${/** @type {Error} */ (e).message}`, "command"));
      return out;
    }
    const args = (config.arguments ?? []).filter((/** @type {any} */ a) => a !== null);
    const argv = [config.command, ...args].join(" ");
    return new Promise((resolve) => {
      const child = spawn(config.command, args, {
        cwd: config.working_directory || undefined,
        stdio: [config.stdin === null ? "ignore" : "pipe", "pipe", "pipe"],
      });
      /** @type {Buffer[]} */ const so = [];
      /** @type {Buffer[]} */ const se = [];
      child.stdout?.on("data", (b) => so.push(b));
      child.stderr?.on("data", (b) => se.push(b));
      if (config.stdin !== null) {
        child.stdin?.on("error", () => { /* the command may exit without reading its input */ });
        child.stdin?.end(config.stdin);
      }
      child.on("error", (e) => {
        out.diagnostics.push(error("Command Execution Failed", `The data source received an unexpected error while attempting to execute the command.\n\nCommand: ${argv}\nState: ${e.message}`, "command"));
        resolve(out);
      });
      child.on("close", (code, signal) => {
        const stdout = Buffer.concat(so).toString("utf8");
        const stderr = Buffer.concat(se).toString("utf8");
        // Empty output is null, as upstream sets only non-empty strings.
        out.state.stdout = stdout.length > 0 ? stdout : null;
        out.state.stderr = stderr.length > 0 ? stderr : null;
        out.state.exit_code = code ?? -1; // Go's ProcessState.ExitCode() is -1 when killed by a signal
        if ((code !== 0 || signal) && !config.allow_non_zero_exit_code) {
          out.diagnostics.push(error("Command Execution Failed",
            "The data source executed the command but received a non-zero exit code. If a non-zero exit code is expected " +
            "and can be handled in configuration, set \"allow_non_zero_exit_code\" to true.\n\n" +
            `Command: ${argv}\nCommand Error: ${stderr}\nState: ${signal ? `signal: ${signal}` : `exit status ${code}`}`, "command"));
        }
        resolve(out);
      });
    });
  },
};

serve({
  name: "local",
  providerSchema: { attributes: [] },
  resources: {
    local_file: fileResource(false),
    local_sensitive_file: fileResource(true),
  },
  dataSources: {
    local_file: fileDataSource(false),
    local_sensitive_file: fileDataSource(true),
    local_command: localCommand,
  },
});
