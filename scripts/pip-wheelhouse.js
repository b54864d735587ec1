// Offline-first pip installs: a wheelhouse (a folder of wheels) per set of requirements, filled once
// by `pip download` from the index and then used with no index at all (PIP_NO_INDEX,
// PIP_FIND_LINKS), so a warm run of `npm run package:python` or test/python-package.test.ts asks
// PyPI nothing.
//
// Why not pip's own cache: pip caches downloads only when the index answers with HTTP caching
// headers, and the registry proxy these machines reach sends none (`pip cache info` stays at 0 files
// after an install), so every pip run would download everything again.
//
// Where: $CDKTF_K3S_KILO_WHEELS, default ${XDG_CACHE_HOME:-~/.cache}/cdktf-k3s-kilo/pip-wheels
// (beside tools/build.sh's go-tools), one folder per key: a hash of the requirements, the Python
// version and the platform. A folder is complete once its `.complete` file exists; it is filled in a
// temporary folder and renamed into place, so concurrent runs never see half a wheelhouse.
const { spawnSync } = require("child_process");
const { createHash } = require("crypto");
const { existsSync, mkdirSync, mkdtempSync, readdirSync, renameSync, rmSync, writeFileSync } = require("fs");
const { homedir } = require("os");
const { join } = require("path");

function cacheRoot() {
  return process.env.CDKTF_K3S_KILO_WHEELS
    ?? join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "cdktf-k3s-kilo", "pip-wheels");
}

/** The environment of a process that runs pip against the index (never against a wheelhouse). */
function onlineEnv() {
  const env = { ...process.env };
  delete env.PIP_NO_INDEX;
  delete env.PIP_FIND_LINKS;
  return env;
}

/** The environment that makes every pip in a process (and its children) install from `dir` only. */
function offlineEnv(dir) {
  return { PIP_NO_INDEX: "1", PIP_FIND_LINKS: dir };
}

function run(cmd, args, { env = process.env, timeoutMs = 600_000 } = {}) {
  const r = spawnSync(cmd, args, { env, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 << 20 });
  if (r.status !== 0) {
    const why = r.error ? String(r.error) : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(`${cmd} ${args.join(" ")}: ${why}\n${(r.stdout ?? "").slice(-3000)}\n${(r.stderr ?? "").slice(-3000)}`);
  }
  return r.stdout;
}

/** What wheels fit: the interpreter's tag and platform ("cpython-311 linux-x86_64"). */
function pythonTag(python) {
  return run(python, ["-c", "import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())"], { timeoutMs: 60_000 }).trim();
}

/**
 * The wheelhouse for `requirements` (arguments to `pip download`: requirement strings, `-r FILE`,
 * wheel paths), downloading it first when it is missing. `key` names what the wheels depend on
 * (e.g. the requirement file's text rather than its path). `drop` removes files from the download
 * that must not be kept (a locally built wheel given as a requirement). Returns the folder and
 * whether it was downloaded now.
 */
function ensureWheelhouse({ name, key, requirements, python = "python3", drop = () => false, timeoutMs = 900_000 }) {
  const tag = pythonTag(python);
  const hash = createHash("sha256").update(JSON.stringify([key, tag])).digest("hex").slice(0, 16);
  const parent = join(cacheRoot(), name);
  const dir = join(parent, hash);
  if (existsSync(join(dir, ".complete"))) return { dir, downloaded: false };

  mkdirSync(parent, { recursive: true });
  const tmp = mkdtempSync(join(parent, ".download-"));
  try {
    run(python, ["-m", "pip", "download", "--no-input", "--quiet", "--dest", tmp, ...requirements], { env: onlineEnv(), timeoutMs });
    for (const f of readdirSync(tmp)) if (drop(f)) rmSync(join(tmp, f), { force: true });
    writeFileSync(join(tmp, ".complete"), `${JSON.stringify({ key, tag }, null, 2)}\n`);
    rmSync(dir, { recursive: true, force: true }); // an incomplete one left by a killed run
    try {
      renameSync(tmp, dir);
    } catch (e) {
      if (!existsSync(join(dir, ".complete"))) throw e; // else another run filled it first
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return { dir, downloaded: true };
}

/** Forget a wheelhouse (when an install from it failed), so the next ensureWheelhouse fills it anew. */
function dropWheelhouse(dir) {
  rmSync(dir, { recursive: true, force: true });
}

module.exports = { cacheRoot, ensureWheelhouse, dropWheelhouse, offlineEnv, onlineEnv, pythonTag };
