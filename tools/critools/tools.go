//go:build tools

// Package critools pins cri-tools' crictl and critest (a test binary of
// cmd/critest, built with go test -c) apart from Cairn's own module.
package critools

import (
	_ "github.com/onsi/ginkgo/v2"
	_ "github.com/onsi/gomega"
	_ "sigs.k8s.io/cri-tools/cmd/crictl"
	_ "sigs.k8s.io/cri-tools/pkg/benchmark"
	_ "sigs.k8s.io/cri-tools/pkg/validate"
)
