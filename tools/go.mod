// The Go programs the tests run, pinned here so Go verifies each module's content against go.sum.
// Each is built with its own module as the main module (its own go.mod and go.sum pick and verify
// its dependencies), by tools/build.sh; this module only pins and verifies the modules themselves.
// The Kubernetes control plane is the exception: see kube/go.mod. Why each version is written the
// way it is: tools/README.md.
module cdktf-k3s-kilo/tools

go 1.25

require (
	// hashicorp/random 3.7.2: the release tag's commit (the module path has no /v3, so Go names it by a pseudo-version).
	github.com/terraform-providers/terraform-provider-random v1.3.2-0.20250422105519-bc2ddb552b46
	// hashicorp/local 2.9.0: the release tag's commit (2.6.1 is not served by the module proxy).
	github.com/terraform-providers/terraform-provider-local v1.4.1-0.20260513075820-3561e410f9fe
	// hashicorp/kubernetes: v3.2.1 plus two commits (a grpc bump, CODEOWNERS), the only commit of the
	// provider after 2.x that the module proxy serves; no release tag is served.
	github.com/hashicorp/terraform-provider-kubernetes v1.13.4-0.20260821094251-3a33fb6cc605
	// OpenTofu 1.12.6, to run the cluster end-to-end test under tofu as well as terraform.
	github.com/opentofu/opentofu v1.12.6
	// kine 0.17.5: the etcd API on SQLite, the datastore of the test control plane (as in K3s).
	github.com/k3s-io/kine v0.17.5
	// kwok 0.7.0: simulated Nodes and pods for the test control plane (no kubelet can run here).
	sigs.k8s.io/kwok v0.7.0
)
