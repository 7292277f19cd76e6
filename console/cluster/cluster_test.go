package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-os/cairn/internal/testenv"
	"github.com/cairn-os/cairn/update-engine/locksmith"
)

func TestParseLocks(t *testing.T) {
	for _, tc := range []struct {
		name string
		kvs  []KV
		want []Lock
	}{
		{"none", nil, nil},
		{"the default, held", []KV{{Key: locksmith.SemaphoreOf, Value: []byte(`{"semaphore":0,"max":1,"holders":["m1"]}`)}},
			[]Lock{{Key: locksmith.SemaphoreOf, Max: 1, Free: 0, Holders: []string{"m1"}}}},
		{"groups after the default, by name", []KV{
			{Key: locksmith.SemaphoreKey("web"), Value: []byte(`{"semaphore":2,"max":2,"holders":[]}`)},
			{Key: locksmith.SemaphoreKey("db"), Value: []byte(`{"semaphore":0,"max":1,"holders":["m9"]}`)},
			{Key: locksmith.SemaphoreOf, Value: []byte(`{"semaphore":1,"max":1}`)},
		}, []Lock{
			{Key: locksmith.SemaphoreOf, Max: 1, Free: 1, Holders: []string{}},
			{Key: locksmith.SemaphoreKey("db"), Group: "db", Max: 1, Holders: []string{"m9"}},
			{Key: locksmith.SemaphoreKey("web"), Group: "web", Max: 2, Free: 2, Holders: []string{}},
		}},
		{"a broken value shows with its error", []KV{{Key: locksmith.SemaphoreOf, Value: []byte(`{"semaphore":`)}},
			[]Lock{{Key: locksmith.SemaphoreOf, Holders: []string{}, Error: "reboot semaphore: unexpected end of JSON input"}}},
		{"other keys are not locks", []KV{
			{Key: locksmith.KeyPrefix + "/groups/a/b/semaphore", Value: []byte(`{}`)},
			{Key: locksmith.KeyPrefix + "/groups//semaphore", Value: []byte(`{}`)},
			{Key: locksmith.KeyPrefix + "/other", Value: []byte(`{}`)},
			{Key: "/coreos.com/network/config", Value: []byte(`{}`)},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseLocks(tc.kvs); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseLeases(t *testing.T) {
	const p = DefaultFlannelPrefix
	kvs := []KV{
		{Key: p + "/subnets/10.5.20.0-24", Value: []byte(`{"PublicIP":"192.168.1.20","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:58:0a:05:14:01"}}`), Lease: 7},
		{Key: p + "/subnets/10.5.3.0-24", Value: []byte(`{"PublicIP":"192.168.1.3","BackendType":"host-gw"}`)},
		{Key: p + "/subnets/10.5.9.0-24", Value: []byte(`{"PublicIP":"not an ip"}`), Lease: 8},
		{Key: p + "/subnets/garbage", Value: []byte(`{}`), Lease: 9},
		{Key: p + "/config", Value: []byte(`{"Network":"10.5.0.0/16"}`)},
	}
	got := ParseLeases(p, kvs)
	want := []Lease{
		{Subnet: "10.5.3.0/24", PublicIP: "192.168.1.3", Backend: "host-gw", Reservation: true},
		{Subnet: "10.5.9.0/24", Error: `malformed lease: PublicIP "not an ip" is not an IPv4 address`},
		{Subnet: "10.5.20.0/24", PublicIP: "192.168.1.20", Backend: "vxlan", VNI: 1, VtepMAC: "0a:58:0a:05:14:01"},
		{Subnet: "garbage", Error: `malformed lease: subnet "garbage" is not <ip>-<len>`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	s := Snapshot{Leases: got, Locks: []Lock{{Key: "k", Holders: []string{"m1", "m2"}}}}
	if l := s.LeaseOf("192.168.1.20"); l == nil || l.Subnet != "10.5.20.0/24" {
		t.Errorf("LeaseOf: %+v", l)
	}
	if s.LeaseOf("") != nil || s.LeaseOf("10.0.0.1") != nil {
		t.Error("LeaseOf found a lease of no address")
	}
	if s.HoldsLock("m2") == nil || s.HoldsLock("m3") != nil || len(s.Holders()) != 2 {
		t.Errorf("holders: %+v", s.Holders())
	}
}

// The watcher reads etcd as locksmith and flannel wrote it, says when it changed, and
// releases a hold an operator names; without etcd it says so.
func TestWatcherEtcd(t *testing.T) {
	endpoint := testenv.Etcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	changes := 0
	w := &Watcher{Etcd: cli, Endpoints: []string{endpoint}, Changed: func() { changes++ }}
	if s := w.Snapshot(); !s.Etcd || !s.At.IsZero() {
		t.Fatalf("before the first poll: %+v", s)
	}
	s := w.Poll(ctx)
	if s.Error != "" || len(s.Locks) != 0 || len(s.Leases) != 0 || changes != 1 {
		t.Fatalf("empty etcd: %+v, %d changes", s, changes)
	}
	lock := &locksmith.EtcdLock{Client: cli, Key: locksmith.SemaphoreOf, ID: "m1"}
	if err := lock.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	lease, _ := cli.Grant(ctx, 600)
	cli.Put(ctx, "/coreos.com/network/subnets/10.5.1.0-24", `{"PublicIP":"10.0.0.1","BackendType":"vxlan","BackendData":{"VNI":1,"VtepMAC":"0a:58:0a:05:01:01"}}`, clientv3.WithLease(lease.ID))
	cli.Put(ctx, "/coreos.com/network/config", `{"Network":"10.5.0.0/16"}`)
	s = w.Poll(ctx)
	if len(s.Locks) != 1 || !reflect.DeepEqual(s.Locks[0].Holders, []string{"m1"}) || len(s.Leases) != 1 || s.Leases[0].Reservation ||
		s.Network != "10.5.0.0/16" || changes != 2 {
		t.Fatalf("after a lock and a lease: %+v, %d changes", s, changes)
	}
	if w.Poll(ctx); changes != 2 {
		t.Errorf("a poll that found the same told of a change")
	}
	if err := w.Unlock(ctx, "", "m2"); !errors.Is(err, ErrNotHolder) {
		t.Errorf("unlocking a machine that holds nothing: %v", err)
	}
	if err := w.Unlock(ctx, "/somewhere/else", "m1"); !errors.Is(err, ErrNotHolder) {
		t.Errorf("unlocking a key that is not a semaphore: %v", err)
	}
	if err := w.Unlock(ctx, "", "m1"); err != nil {
		t.Fatal(err)
	}
	if s := w.Snapshot(); len(s.Locks) != 1 || len(s.Locks[0].Holders) != 0 || s.Locks[0].Free != 1 {
		t.Errorf("after the unlock: %+v", s.Locks)
	}
	if err := (&Watcher{}).Unlock(ctx, "", "m1"); !errors.Is(err, ErrNotConfigured) {
		t.Errorf("unlock without etcd: %v", err)
	}
}

// A dead etcd shows as an error beside what was read before.
func TestWatcherEtcdDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + addr}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	w := &Watcher{Etcd: cli}
	w.snap, w.done = Snapshot{Etcd: true, Locks: []Lock{{Key: "k", Holders: []string{"m1"}}}}, true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s := w.Poll(ctx)
	if s.Error == "" || len(s.Locks) != 1 {
		t.Errorf("etcd down: %+v", s)
	}
}

// kubeCerts makes a CA, a server certificate for 127.0.0.1 and a client certificate; its
// write makes a kubeconfig for a server with the CA inline and the client's certificate
// and key in files beside it (or a token).
func kubeCerts(t *testing.T) (*tls.Config, func(server string, token bool) string) {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kubernetes"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(cn string, ext x509.ExtKeyUsage, ip bool) ([]byte, []byte) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, NotBefore: time.Now().Add(-time.Hour),
			NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{ext}, KeyUsage: x509.KeyUsageDigitalSignature}
		if ip {
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		kb, _ := x509.MarshalECPrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	}
	srvCert, srvKey := issue("apiserver", x509.ExtKeyUsageServerAuth, true)
	cliCert, cliKey := issue("cairn-console", x509.ExtKeyUsageClientAuth, false)
	os.WriteFile(filepath.Join(dir, "client.crt"), cliCert, 0o600)
	os.WriteFile(filepath.Join(dir, "client.key"), cliKey, 0o600)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	pair, _ := tls.X509KeyPair(srvCert, srvKey)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	tc := &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
	return tc, func(server string, token bool) string {
		user := "    client-certificate: client.crt\n    client-key: client.key\n"
		if token {
			user = "    token: sekrit\n"
		}
		kc := "apiVersion: v1\nkind: Config\ncurrent-context: admin@cairn\nclusters:\n- name: cairn\n  cluster:\n    server: " + server +
			"\n    certificate-authority-data: " + base64.StdEncoding.EncodeToString(caPEM) + "\ncontexts:\n- name: admin@cairn\n  context:\n    cluster: cairn\n    user: admin\n" +
			"users:\n- name: admin\n  user:\n" + user
		path := filepath.Join(dir, "kubeconfig")
		os.WriteFile(path, []byte(kc), 0o600)
		return path
	}
}

const nodeListJSON = `{"kind":"NodeList","apiVersion":"v1","items":[
 {"metadata":{"name":"cairn-2","labels":{"kubernetes.io/hostname":"cairn-2"}},"spec":{"unschedulable":true},
  "status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"False","reason":"KubeletNotReady"}],
   "addresses":[{"type":"Hostname","address":"cairn-2"},{"type":"InternalIP","address":"192.168.76.12"}],
   "nodeInfo":{"machineID":"bbbb","kubeletVersion":"v1.34.1","osImage":"Cairn 2.0.0"}}},
 {"metadata":{"name":"cairn-1","labels":{"node-role.kubernetes.io/control-plane":""}},"spec":{},
  "status":{"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady"}],
   "addresses":[{"type":"InternalIP","address":"192.168.76.11"}],
   "nodeInfo":{"machineID":"aaaa","kubeletVersion":"v1.34.1","osImage":"Cairn 2.0.0"}}}]}`

// The nodes as a kubeconfig's client certificate or token reads them from a TLS API server
// that checks both.
func TestKubeNodes(t *testing.T) {
	for _, token := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			authed := len(r.TLS.PeerCertificates) == 1 && r.TLS.PeerCertificates[0].Subject.CommonName == "cairn-console" ||
				r.Header.Get("Authorization") == "Bearer sekrit"
			if !authed {
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(`{"kind":"Status","message":"Unauthorized"}`))
				return
			}
			if r.URL.Path != "/api/v1/nodes" {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte(nodeListJSON))
		}))
		tc, write := kubeCerts(t)
		srv.TLS = tc
		srv.StartTLS()
		defer srv.Close()
		path := write(srv.URL, token)
		k, err := LoadKubeconfig(path)
		if err != nil {
			t.Fatal(err)
		}
		n := k.Nodes(context.Background())
		if n.Error != "" {
			t.Fatalf("token %v: %s", token, n.Error)
		}
		want := []Node{
			{Name: "cairn-1", Ready: "True", Reason: "KubeletReady", Roles: []string{"control-plane"}, Kubelet: "v1.34.1", OSImage: "Cairn 2.0.0", InternalIP: "192.168.76.11", MachineID: "aaaa"},
			{Name: "cairn-2", Ready: "False", Reason: "KubeletNotReady", Unschedulable: true, Kubelet: "v1.34.1", OSImage: "Cairn 2.0.0", InternalIP: "192.168.76.12", MachineID: "bbbb"},
		}
		if !reflect.DeepEqual(n.Items, want) {
			t.Errorf("token %v:\ngot  %+v\nwant %+v", token, n.Items, want)
		}
		if x := n.NodeOf("bbbb", ""); x == nil || x.Name != "cairn-2" {
			t.Errorf("NodeOf by machine id: %+v", x)
		}
		if x := n.NodeOf("", "192.168.76.11"); x == nil || x.Name != "cairn-1" {
			t.Errorf("NodeOf by address: %+v", x)
		}
	}
	// Without credentials the API server's refusal is the error shown.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"kind":"Status","message":"nodes is forbidden: User \"x\" cannot list resource \"nodes\""}`))
	}))
	defer srv.Close()
	k := &Kube{Server: srv.URL, HTTP: srv.Client()}
	if n := k.Nodes(context.Background()); !strings.Contains(n.Error, "403 Forbidden: nodes is forbidden") {
		t.Errorf("refused: %q", n.Error)
	}
}

// A watcher polling without Kubernetes reads its nodes once SetKube gives it a cluster, and
// stops at SetKube(nil).
func TestWatcherSetKube(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(nodeListJSON))
	}))
	defer srv.Close()
	w := &Watcher{}
	ctx := context.Background()
	if s := w.Poll(ctx); s.Kubernetes != nil {
		t.Fatalf("no cluster yet: %+v", s.Kubernetes)
	}
	w.SetKube(&Kube{Server: srv.URL, HTTP: srv.Client()})
	if s := w.Poll(ctx); s.Kubernetes == nil || len(s.Kubernetes.Items) != 2 || s.Kubernetes.Error != "" {
		t.Fatalf("after SetKube: %+v", s.Kubernetes)
	}
	if s := w.Snapshot(); s.Kubernetes == nil || len(s.Kubernetes.Items) != 2 {
		t.Errorf("snapshot after SetKube: %+v", s.Kubernetes)
	}
	w.SetKube(nil)
	if s := w.Poll(ctx); s.Kubernetes != nil {
		t.Errorf("after SetKube(nil): %+v", s.Kubernetes)
	}
}

func TestLoadKubeconfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, body, want string }{
		{"no context", "apiVersion: v1\nclusters: []\n", `no context ""`},
		{"no cluster", "current-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\n", `no cluster "x" with a server`},
		{"bad CA", "current-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\nclusters:\n- name: x\n  cluster: {server: 'https://h', certificate-authority-data: 'bm90IGEgY2VydA=='}\n",
			"no certificate in its certificate authority"},
		{"missing key file", "current-context: c\ncontexts:\n- name: c\n  context: {cluster: x, user: u}\nclusters:\n- name: x\n  cluster: {server: 'https://h'}\nusers:\n- name: u\n  user: {client-certificate: nope.crt}\n",
			"nope.crt"},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		os.WriteFile(p, []byte(tc.body), 0o600)
		if _, err := LoadKubeconfig(p); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
