// Remove the run's own temp dir (see global-setup.js): cdktf's Testing helpers never remove their
// outdirs, and inside jest the harness's "exit" handlers never fire.
const { rmSync } = require("fs");

module.exports = async () => {
  const dir = process.env.CDKTF_K3S_KILO_TEST_TMPDIR;
  if (dir && dir.includes("cdktf-k3s-kilo-test-")) rmSync(dir, { recursive: true, force: true });
};
