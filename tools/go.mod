// The Go programs the tests run, pinned here so Go verifies each module's content against go.sum.
// Each is built with its own module as the main module (its own go.mod and go.sum pick and verify
// its dependencies), by tools/build.sh; this module only pins and verifies the modules themselves.
// See tools/README.md for why each version is written the way it is.
module cdktf-k3s-kilo/tools

go 1.25

require (
	// hashicorp/random 3.7.2: the release tag's commit (the module path has no /v3, so Go names it by a pseudo-version).
	github.com/terraform-providers/terraform-provider-random v1.3.2-0.20250422105519-bc2ddb552b46
	// hashicorp/local 2.9.0: the release tag's commit (2.6.1 is not served by the module proxy; see README).
	github.com/terraform-providers/terraform-provider-local v1.4.1-0.20260513075820-3561e410f9fe
	// OpenTofu 1.12.6, to run the cluster end-to-end test under tofu as well as terraform.
	github.com/opentofu/opentofu v1.12.6
)
