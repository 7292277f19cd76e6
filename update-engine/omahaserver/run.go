package omahaserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cairn-os/cairn/update-engine/updateconf"
)

// Run is the cairn-omaha-server command.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cairn-omaha-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8000", "address to listen on (loopback by default)")
	dir := fs.String("dir", "", "payload directory: <dir>/<group>/*.cairn")
	appID := fs.String("app-id", updateconf.Defaults["APP_ID"], "Omaha application id")
	events := fs.String("events", "", "JSON-lines file to record reported events in")
	rate := fs.Int64("rate", 0, "limit payload downloads to this many bytes per second")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" {
		fmt.Fprintln(stderr, "cairn-omaha-server: -dir is required")
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv := &Server{Dir: *dir, AppID: *appID, EventLog: *events, Rate: *rate, Log: log}
	if err := srv.LoadEvents(); err != nil {
		fmt.Fprintf(stderr, "cairn-omaha-server: %v\n", err)
		return 1
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "cairn-omaha-server: %v\n", err)
		return 1
	}
	// The address goes to stdout so that a caller that asked for port 0 learns the port.
	fmt.Fprintf(stdout, "http://%s%s\n", ln.Addr(), UpdatePath)
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := hs.Shutdown(sctx); err != nil {
			log.Warn("connections still open at shutdown", "err", err)
		}
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintf(stderr, "cairn-omaha-server: %v\n", err)
		return 1
	}
	return 0
}
