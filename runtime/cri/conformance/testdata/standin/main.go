// Command standin is what the stand-ins of critest's images run, built static at test
// time: "serve" is the web server of the nginx and httpd images, "euid" the probe of the
// nonewprivs image (installed setuid root, it says the effective uid it got), "pause" the
// process of the pause images (it waits for a signal).
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: standin serve PORT [PIDFILE] | euid | pause")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "euid":
		fmt.Printf("Effective uid: %d\n", syscall.Geteuid())
	case "serve":
		serve(os.Args[2:])
	case "pause":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
	default:
		// Started under a process title (nginx's "nginx: master process ..."): the
		// arguments follow it.
		if len(os.Args) > 2 && os.Args[2] == "serve" {
			serve(os.Args[3:])
		}
		fmt.Fprintf(os.Stderr, "standin: unknown mode %q\n", os.Args[1])
		os.Exit(2)
	}
}

// serve answers every GET with 200 on PORT, after writing its pid to PIDFILE if given.
func serve(args []string) {
	if len(args) < 1 {
		fmt.Fprintln(os.Stderr, "standin serve: want PORT")
		os.Exit(2)
	}
	port, err := strconv.Atoi(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "standin serve: port %q: %v\n", args[0], err)
		os.Exit(2)
	}
	if len(args) > 1 {
		if err := os.WriteFile(args[1], []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "standin serve:", err)
			os.Exit(1)
		}
	}
	name := os.Getenv("STANDIN_NAME")
	fmt.Fprintf(os.Stderr, "%s: serving on port %d\n", name, port)
	http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "<html><body><h1>%s stand-in</h1></body></html>\n", name)
	})
	err = http.ListenAndServe(":"+strconv.Itoa(port), nil) //nolint:gosec // a test server without timeouts
	fmt.Fprintln(os.Stderr, "standin serve:", err)
	os.Exit(1)
}
