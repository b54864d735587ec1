// cdktf's Testing helpers synthesize into fresh temp dirs (cdktf.outdir.*) and never remove them;
// delete the ones this run created.
const { readdirSync, rmSync, statSync } = require("fs");
const { tmpdir } = require("os");
const { join } = require("path");

module.exports = async () => {
  const start = Number(process.env.CDKTF_K3S_KILO_TEST_START || Date.now());
  for (const name of readdirSync(tmpdir())) {
    // standin-tf-*: test/harness/terraform-env.ts's mirror dirs (jest's sandboxed process never
    // fires the "exit" handler that removes them outside jest).
    if (!name.startsWith("cdktf.outdir.") && !name.startsWith("standin-tf-")) continue;
    const path = join(tmpdir(), name);
    try {
      if (statSync(path).birthtimeMs >= start - 1000) rmSync(path, { recursive: true, force: true });
    } catch { /* gone already */ }
  }
};
