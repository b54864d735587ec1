//go:build tools

// Package kube names the Kubernetes commands tools/build.sh builds as dependencies of this module
// (k8s.io/kubernetes cannot be the main module outside its repository: its go.mod replaces the
// staging modules by local paths, which its module zip does not contain).
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
