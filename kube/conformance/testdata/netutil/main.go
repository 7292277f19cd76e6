// Command netutil is the curl and nc of the agnhost image's stand-in, built static at test
// time and installed under both names: the few forms of each that Kubernetes' e2e specs run
// in agnhost containers (upstream's image has Alpine's curl and OpenBSD's netcat; Debian's
// busybox-static has neither curl nor a UDP nc).
//
//	curl [-g] [-q] [-s] [-k] [-X METHOD] [-o FILE] [-w '%{http_code}'] [--max-time S] [--connect-timeout S] URL
//	nc [-u] [-w S] HOST PORT
//
// curl prints the body (to FILE with -o) and exits 0 on any HTTP answer, 7 when it cannot
// connect, 28 on a timeout, as curl does. nc sends its input and prints what comes back;
// with -w it gives up that long after the last traffic (UDP has no end of its own).
package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	name := filepath.Base(os.Args[0])
	var err error
	code := 0
	switch name {
	case "curl":
		code, err = curl(os.Args[1:], os.Stdout)
	case "nc":
		code, err = nc(os.Args[1:], os.Stdin, os.Stdout)
	default:
		err, code = fmt.Errorf("run as curl or nc, not %s", name), 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
	}
	os.Exit(code)
}

// curlOptions are the options of curl's command line that netutil knows.
type curlOptions struct {
	url, method, output, format string
	insecure                    bool
	maxTime, connectTimeout     time.Duration
}

// parseCurl reads curl's command line.
func parseCurl(args []string) (curlOptions, error) {
	o := curlOptions{method: http.MethodGet}
	seconds := func(s string) (time.Duration, error) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			return 0, fmt.Errorf("not a number of seconds: %q", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func() (string, error) {
			if i+1 >= len(args) {
				return "", fmt.Errorf("option %s wants a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		switch {
		case a == "-g" || a == "-q" || a == "-s" || a == "--silent" || a == "--globoff":
		case a == "-k" || a == "--insecure":
			o.insecure = true
		case a == "-X" || a == "--request":
			o.method, err = value()
		case strings.HasPrefix(a, "-X") && len(a) > 2:
			o.method = a[2:]
		case a == "-o" || a == "--output":
			o.output, err = value()
		case a == "-w" || a == "--write-out":
			o.format, err = value()
		case a == "--max-time" || a == "-m":
			var v string
			if v, err = value(); err == nil {
				o.maxTime, err = seconds(v)
			}
		case a == "--connect-timeout":
			var v string
			if v, err = value(); err == nil {
				o.connectTimeout, err = seconds(v)
			}
		case strings.HasPrefix(a, "-"):
			err = fmt.Errorf("option %s is not one this stand-in knows", a)
		default:
			if o.url != "" {
				err = fmt.Errorf("a second URL %q", a)
			}
			o.url = a
		}
		if err != nil {
			return o, err
		}
	}
	if o.url == "" {
		return o, errors.New("no URL")
	}
	if o.format != "" && o.format != "%{http_code}" {
		return o, fmt.Errorf("write-out %q: only %%{http_code} is known", o.format)
	}
	return o, nil
}

// curl runs a request and returns curl's exit code.
func curl(args []string, stdout io.Writer) (int, error) {
	o, err := parseCurl(args)
	if err != nil {
		return 2, err
	}
	dialer := &net.Dialer{Timeout: o.connectTimeout}
	client := &http.Client{
		Timeout: o.maxTime,
		Transport: &http.Transport{DialContext: dialer.DialContext,
			TLSClientConfig: &tls.Config{InsecureSkipVerify: o.insecure}}, //nolint:gosec // curl -k, asked for
		// curl does not follow redirects unless told to.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequest(o.method, o.url, nil)
	if err != nil {
		return 3, err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return 28, err
		}
		return 7, err
	}
	defer resp.Body.Close()
	body := stdout
	if o.output != "" {
		f, err := os.Create(o.output)
		if err != nil {
			return 23, err
		}
		defer f.Close()
		body = f
	}
	if _, err := io.Copy(body, resp.Body); err != nil {
		return 56, err
	}
	if o.format != "" {
		fmt.Fprint(stdout, resp.StatusCode)
	}
	return 0, nil
}

// sendGrace is how long nc waits, once the peer is done, for its input to be sent.
const sendGrace = time.Second

// nc sends in to HOST:PORT and copies what comes back to out.
func nc(args []string, in io.Reader, out io.Writer) (int, error) {
	udp := false
	var wait time.Duration
	var rest []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-u":
			udp = true
		case a == "-w" && i+1 < len(args):
			s, err := strconv.Atoi(args[i+1])
			if err != nil || s <= 0 {
				return 2, fmt.Errorf("-w %q: want seconds", args[i+1])
			}
			wait = time.Duration(s) * time.Second
			i++
		case strings.HasPrefix(a, "-"):
			return 2, fmt.Errorf("option %s is not one this stand-in knows", a)
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) != 2 {
		return 2, errors.New("want HOST PORT")
	}
	network := "tcp"
	if udp {
		network = "udp"
	}
	d := net.Dialer{Timeout: wait}
	conn, err := d.Dial(network, net.JoinHostPort(rest[0], rest[1]))
	if err != nil {
		return 1, err
	}
	defer conn.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := io.Copy(conn, in)
		if tc, ok := conn.(*net.TCPConn); ok && err == nil {
			err = tc.CloseWrite()
		}
		sent <- err
	}()
	buf := make([]byte, 64<<10)
	for {
		if wait > 0 {
			conn.SetReadDeadline(time.Now().Add(wait))
		}
		n, err := conn.Read(buf)
		out.Write(buf[:n])
		var ne net.Error
		switch {
		case err == nil:
			continue
		case errors.Is(err, io.EOF), errors.As(err, &ne) && ne.Timeout():
			// The peer is done; a send that failed (stdin unreadable, the connection
			// refused) fails nc. One still under way a moment later waits on a stdin that
			// stays open, which does not hold nc up.
			select {
			case err := <-sent:
				if err != nil {
					return 1, fmt.Errorf("send: %w", err)
				}
			case <-time.After(sendGrace):
			}
			return 0, nil
		default:
			return 1, err
		}
	}
}
