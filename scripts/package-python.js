#!/usr/bin/env node
// `npm run package:python`: the Python package (wheel and sdist) in dist/python, built by jsii-pacmak
// from the compiled library. jsii-pacmak packs the npm package first (`npm pack`, whose prepack
// compiles), generates the `cdktf_k3s_kilo` module around that tarball, then in a new virtualenv
// pip-installs its build tools (jsii-pacmak's requirements-dev.txt: setuptools, build, twine) and
// runs `python -m build` (which installs setuptools and build again in an isolated environment) and
// `twine check`.
//
// Those pip installs come from a wheelhouse (scripts/pip-wheelhouse.js) filled from PyPI on the
// first run only; later runs need no network. Needs python3 >= 3.10 with venv and pip on PATH.
const { spawnSync } = require("child_process");
const { readdirSync, readFileSync, rmSync, statSync } = require("fs");
const { join, resolve } = require("path");
const { ensureWheelhouse, offlineEnv } = require("./pip-wheelhouse");

const REPO = resolve(__dirname, "..");
const OUT = join(REPO, "dist", "python");
const started = Date.now();
const secs = (t) => `${((Date.now() - t) / 1000).toFixed(1)} s`;

const requirementsFile = require.resolve("jsii-pacmak/lib/targets/python/requirements-dev.txt", { paths: [REPO] });
const pacmakVersion = require(require.resolve("jsii-pacmak/package.json", { paths: [REPO] })).version;

const t0 = Date.now();
const { dir: wheels, downloaded } = ensureWheelhouse({
  name: "jsii-pacmak-build",
  key: { pacmak: pacmakVersion, requirements: readFileSync(requirementsFile, "utf8") },
  requirements: ["-r", requirementsFile],
});
console.log(`package:python: build tools ${downloaded ? "downloaded into" : "from"} ${wheels} (${secs(t0)})`);

rmSync(OUT, { recursive: true, force: true });
const t1 = Date.now();
const r = spawnSync(join(REPO, "node_modules", ".bin", "jsii-pacmak"), ["--targets", "python", "--outdir", "dist", "--no-npmignore", ...process.argv.slice(2)], {
  cwd: REPO,
  stdio: "inherit",
  timeout: 1_200_000,
  env: { ...process.env, ...offlineEnv(wheels), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION: "20" },
});
if (r.status !== 0) {
  console.error(`package:python: jsii-pacmak failed (${r.error ?? r.signal ?? `exit ${r.status}`}) after ${secs(t1)}.` +
    ` Its pip installs ran with PIP_NO_INDEX from ${wheels}: if a wheel is missing there, delete that folder and run again.`);
  process.exit(1);
}
for (const f of readdirSync(OUT)) console.log(`package:python: dist/python/${f} (${(statSync(join(OUT, f)).size / 1024).toFixed(0)} KiB)`);
console.log(`package:python: jsii-pacmak ${pacmakVersion} took ${secs(t1)}; ${secs(started)} in all`);
