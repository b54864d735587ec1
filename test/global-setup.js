// Give the run a temp dir of its own: every worker inherits TMPDIR, so cdktf's Testing outdirs, the
// stand-in provider mirror and the labs' files land there, and the teardown removes exactly what this
// run made (never the files of another jest run on the same machine).
const { mkdtempSync } = require("fs");
const { tmpdir } = require("os");
const { join } = require("path");

module.exports = async () => {
  const dir = mkdtempSync(join(tmpdir(), "cdktf-k3s-kilo-test-"));
  process.env.CDKTF_K3S_KILO_TEST_TMPDIR = dir;
  process.env.TMPDIR = dir;
};
