package fetch

import (
	"io"
	"log"
	"runtime"
)

func runtimeArch() string { return runtime.GOARCH }

func quietLogger() *log.Logger { return log.New(io.Discard, "", 0) }
