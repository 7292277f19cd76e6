package fetch

import "runtime"

func runtimeArch() string { return runtime.GOARCH }
