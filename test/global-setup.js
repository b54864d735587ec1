// Remember when the run started, so the teardown removes only what this run left in the temp dir.
module.exports = async () => {
  process.env.CDKTF_K3S_KILO_TEST_START = String(Date.now());
};
