// Command cairn-hello is the example app every Cairn image ships as an ACI
// (/usr/share/cairn/examples/hello.aci): a static program with no files around it, so that
// `rkt run` works on a fresh host with no registry in reach.
//
//	hello              greet, then say so every 5 s until SIGTERM/SIGINT (a long-running service)
//	hello serve ADDR   answer HTTP on ADDR with this pod's hostname and addresses
//	hello get URL      fetch URL (retrying for up to 30 s) and print the body
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	switch {
	case len(args) == 0:
		return greet(ctx)
	case len(args) == 2 && args[0] == "serve":
		return serve(ctx, args[1])
	case len(args) == 2 && args[0] == "get":
		return get(ctx, args[1])
	}
	return errors.New("usage: hello | hello serve ADDR | hello get URL")
}

// whoami is the pod's hostname and its global addresses.
func whoami() string {
	host, _ := os.Hostname()
	var addrs []string
	if as, err := net.InterfaceAddrs(); err == nil {
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok && n.IP.IsGlobalUnicast() {
				addrs = append(addrs, n.IP.String())
			}
		}
	}
	if len(addrs) == 0 {
		return host
	}
	return host + " (" + strings.Join(addrs, ", ") + ")"
}

func greet(ctx context.Context) error {
	fmt.Printf("Hello from Cairn! This is pod %s.\n", whoami())
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			fmt.Println("hello: stopping, asked to")
			return nil
		case <-t.C:
			fmt.Printf("hello: still running (%d)\n", n)
		}
	}
}

func serve(ctx context.Context, addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	me := whoami()
	fmt.Printf("hello: serving on %s as %s\n", l.Addr(), me)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Printf("hello: answered %s\n", r.RemoteAddr)
		fmt.Fprintf(w, "hello from %s\n", me)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(l); err != http.ErrServerClosed {
		return err
	}
	return nil
}

func get(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := &http.Client{Timeout: 3 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				fmt.Printf("%s %s answered: %s", whoami(), url, body)
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", url, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
