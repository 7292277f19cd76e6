package cri

import (
	"testing"

	"github.com/opencontainers/cgroups"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

func TestContainerResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   cgroups.Resources
		want *runtimeapi.LinuxContainerResources
	}{
		{"none", cgroups.Resources{}, &runtimeapi.LinuxContainerResources{}},
		{"limits", cgroups.Resources{CpuShares: 512, CpuQuota: 20000, CpuPeriod: 100000, Memory: 96 << 20, MemorySwap: 128 << 20},
			&runtimeapi.LinuxContainerResources{CpuShares: 512, CpuQuota: 20000, CpuPeriod: 100000, MemoryLimitInBytes: 96 << 20, MemorySwapLimitInBytes: 128 << 20}},
		{"unlimited quota", cgroups.Resources{CpuShares: 2, CpuQuota: -1, CpuPeriod: 100000},
			&runtimeapi.LinuxContainerResources{CpuShares: 2, CpuQuota: -1, CpuPeriod: 100000}},
		{"cpuset and unified", cgroups.Resources{CpusetCpus: "0-1", CpusetMems: "0", Unified: map[string]string{"memory.high": "max"}},
			&runtimeapi.LinuxContainerResources{CpusetCpus: "0-1", CpusetMems: "0", Unified: map[string]string{"memory.high": "max"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := containerResources(&tc.in)
			if !proto.Equal(got.GetLinux(), tc.want) {
				t.Errorf("got %v, want %v", got.GetLinux(), tc.want)
			}
		})
	}
}
