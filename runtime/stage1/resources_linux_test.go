package stage1

import (
	"errors"
	"reflect"
	"testing"

	"github.com/opencontainers/cgroups"

	"github.com/cairn-os/cairn/runtime/podapi"
)

func TestUpdateResources(t *testing.T) {
	old := int64(5)
	res := cgroups.Resources{Memory: 1 << 20, CpuShares: 2, CpuQuota: 1000, CpuPeriod: 100000, CpusetCpus: "0", PidsLimit: &old,
		Unified: map[string]string{"memory.high": "max"}}
	updateResources(&res, &podapi.Resources{MemoryLimit: 2 << 20, CPUQuota: 2000, Unified: map[string]string{"cpu.weight": "50"}})
	if res.Memory != 2<<20 || res.CpuQuota != 2000 || res.CpuShares != 2 || res.CpuPeriod != 100000 || res.CpusetCpus != "0" || *res.PidsLimit != 5 {
		t.Errorf("updated %+v", res)
	}
	if !reflect.DeepEqual(res.Unified, map[string]string{"memory.high": "max", "cpu.weight": "50"}) {
		t.Errorf("unified %v", res.Unified)
	}
	updateResources(&res, &podapi.Resources{CPUShares: 1024, PidsLimit: 7})
	if res.CpuShares != 1024 || res.CpuWeight != cgroups.ConvertCPUSharesToCgroupV2Value(1024) || *res.PidsLimit != 7 {
		t.Errorf("shares %d weight %d pids %d", res.CpuShares, res.CpuWeight, *res.PidsLimit)
	}
}

func TestPauseNeedsACommand(t *testing.T) {
	if _, err := startPause(t.TempDir(), nil); !errors.Is(err, ErrNoPause) {
		t.Fatalf("a shared PID namespace without a pause command: %v", err)
	}
}
