// Package fetchtest serves images to fetch tests on loopback under made-up domain names: one
// handler behind an https and a plain http listener on 127.0.0.1, and an HTTP client whose
// dialer sends the test domains there. Nothing resolves names or leaves the machine.
package fetchtest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Server is a handler reachable as https://<domain> and http://<domain> for its domains.
type Server struct {
	Mux     *http.ServeMux
	TLS     *httptest.Server
	Plain   *httptest.Server
	Domains []string
}

// New starts the servers; they stop when the test ends. The TLS certificate is httptest's,
// which names example.com and its subdomains, so use domains under example.com for https.
func New(t testing.TB, domains ...string) *Server {
	t.Helper()
	if len(domains) == 0 {
		domains = []string{"example.com"}
	}
	s := &Server{Mux: http.NewServeMux(), Domains: domains}
	quiet := log.New(io.Discard, "", 0) // handshakes that tests make fail on purpose
	s.TLS = httptest.NewUnstartedServer(s.Mux)
	s.TLS.Config.ErrorLog = quiet
	s.TLS.StartTLS()
	s.Plain = httptest.NewUnstartedServer(s.Mux)
	s.Plain.Config.ErrorLog = quiet
	s.Plain.Start()
	t.Cleanup(s.TLS.Close)
	t.Cleanup(s.Plain.Close)
	return s
}

// Client trusts the test certificate and dials the test domains' port 443 to the TLS server
// and any other port to the plain one. Other hosts fail to dial.
func (s *Server) Client() *http.Client {
	return &http.Client{Transport: s.Transport(false)}
}

// InsecureClient is Client without certificate verification, as --insecure-options=tls.
func (s *Server) InsecureClient() *http.Client {
	return &http.Client{Transport: s.Transport(true)}
}

// UntrustingClient dials like Client but verifies certificates against the system roots,
// which do not hold the test certificate: every https request fails verification.
func (s *Server) UntrustingClient() *http.Client {
	tr := s.Transport(false)
	tr.TLSClientConfig = &tls.Config{}
	return &http.Client{Transport: tr}
}

// Transport is the transport behind Client.
func (s *Server) Transport(insecureTLS bool) *http.Transport {
	tr := s.TLS.Client().Transport.(*http.Transport).Clone()
	if insecureTLS {
		tr.TLSClientConfig.InsecureSkipVerify = true
	}
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		if !s.serves(host) {
			return nil, fmt.Errorf("fetchtest: no test server for %s", host)
		}
		target := s.Plain.Listener.Addr().String()
		if port == "443" {
			target = s.TLS.Listener.Addr().String()
		}
		return d.DialContext(ctx, network, target)
	}
	return tr
}

func (s *Server) serves(host string) bool {
	for _, d := range s.Domains {
		if host == d || strings.HasSuffix(host, "."+d) {
			return true
		}
	}
	return false
}

// Handle serves body at path (e.g. "/app" or "/images/app.aci").
func (s *Server) Handle(path string, body []byte) {
	s.Mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(body) // a failed write is the client gone; it sees a short body
	})
}
