package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Kube reads a Kubernetes cluster's nodes through its API server, with what a kubeconfig
// gives (the server, its CA, a client certificate or a bearer token): a GET of
// /api/v1/nodes, the one call the console needs, without client-go.
type Kube struct {
	Server string
	Token  string
	HTTP   *http.Client
}

// Nodes is what the last read of the nodes found.
type Nodes struct {
	Server string    `json:"server"`
	At     time.Time `json:"at"`
	Error  string    `json:"error,omitempty"`
	Items  []Node    `json:"nodes"`
}

// Node is one Kubernetes node as the console shows it.
type Node struct {
	Name string `json:"name"`
	// Ready is the Ready condition's status: True, False or Unknown; Reason its reason.
	Ready         string   `json:"ready"`
	Reason        string   `json:"reason,omitempty"`
	Unschedulable bool     `json:"unschedulable"` // cordoned
	Roles         []string `json:"roles,omitempty"`
	Kubelet       string   `json:"kubelet_version"`
	OSImage       string   `json:"os_image"`
	InternalIP    string   `json:"internal_ip,omitempty"`
	// MachineID is the node's /etc/machine-id, the id its Omaha client sends.
	MachineID string `json:"machine_id,omitempty"`
}

// NodeOf is the node of the machine (nil if none).
func (n *Nodes) NodeOf(machineID, ip string) *Node {
	if n == nil {
		return nil
	}
	for i := range n.Items {
		if (machineID != "" && n.Items[i].MachineID == machineID) || (ip != "" && n.Items[i].InternalIP == ip) {
			return &n.Items[i]
		}
	}
	return nil
}

// kubeconfig is the part of a kubeconfig file the console reads.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthority     string `json:"certificate-authority"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
			InsecureSkipTLSVerify    bool   `json:"insecure-skip-tls-verify"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificate     string `json:"client-certificate"`
			ClientCertificateData string `json:"client-certificate-data"`
			ClientKey             string `json:"client-key"`
			ClientKeyData         string `json:"client-key-data"`
			Token                 string `json:"token"`
			TokenFile             string `json:"tokenFile"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

// LoadKubeconfig reads a kubeconfig file's current context: the API server, its CA, and a
// client certificate or token (inline or in files, relative to the kubeconfig's directory).
func LoadKubeconfig(path string) (*Kube, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(b, &kc); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	file := func(p string) ([]byte, error) {
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		return os.ReadFile(p)
	}
	ctxName := kc.CurrentContext
	if ctxName == "" && len(kc.Contexts) == 1 {
		ctxName = kc.Contexts[0].Name
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == ctxName {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return nil, fmt.Errorf("kubeconfig %s: no context %q (set current-context)", path, ctxName)
	}
	k := &Kube{}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	found = false
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		found = true
		k.Server = strings.TrimSuffix(c.Cluster.Server, "/")
		tc.InsecureSkipVerify = c.Cluster.InsecureSkipTLSVerify //nolint:gosec // the kubeconfig asks for it
		var ca []byte
		switch {
		case c.Cluster.CertificateAuthorityData != "":
			if ca, err = base64.StdEncoding.DecodeString(c.Cluster.CertificateAuthorityData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %s: certificate-authority-data: %w", path, clusterName, err)
			}
		case c.Cluster.CertificateAuthority != "":
			if ca, err = file(c.Cluster.CertificateAuthority); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: cluster %s: %w", path, clusterName, err)
			}
		}
		if ca != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, fmt.Errorf("kubeconfig %s: cluster %s: no certificate in its certificate authority", path, clusterName)
			}
			tc.RootCAs = pool
		}
	}
	if !found || k.Server == "" {
		return nil, fmt.Errorf("kubeconfig %s: context %s: no cluster %q with a server", path, ctxName, clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		k.Token = u.User.Token
		if u.User.TokenFile != "" && k.Token == "" {
			t, err := file(u.User.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: %w", path, userName, err)
			}
			k.Token = strings.TrimSpace(string(t))
		}
		cert, key := []byte(nil), []byte(nil)
		if u.User.ClientCertificateData != "" {
			if cert, err = base64.StdEncoding.DecodeString(u.User.ClientCertificateData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: client-certificate-data: %w", path, userName, err)
			}
		} else if u.User.ClientCertificate != "" {
			if cert, err = file(u.User.ClientCertificate); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: %w", path, userName, err)
			}
		}
		if u.User.ClientKeyData != "" {
			if key, err = base64.StdEncoding.DecodeString(u.User.ClientKeyData); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: client-key-data: %w", path, userName, err)
			}
		} else if u.User.ClientKey != "" {
			if key, err = file(u.User.ClientKey); err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: %w", path, userName, err)
			}
		}
		if cert != nil {
			pair, err := tls.X509KeyPair(cert, key)
			if err != nil {
				return nil, fmt.Errorf("kubeconfig %s: user %s: client certificate: %w", path, userName, err)
			}
			tc.Certificates = []tls.Certificate{pair}
		}
	}
	k.HTTP = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment}}
	return k, nil
}

// nodeList is the part of a v1 NodeList the console reads.
type nodeList struct {
	Items []struct {
		Metadata struct {
			Name   string            `json:"name"`
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Unschedulable bool `json:"unschedulable"`
		} `json:"spec"`
		Status struct {
			Conditions []struct {
				Type   string `json:"type"`
				Status string `json:"status"`
				Reason string `json:"reason"`
			} `json:"conditions"`
			Addresses []struct {
				Type    string `json:"type"`
				Address string `json:"address"`
			} `json:"addresses"`
			NodeInfo struct {
				MachineID      string `json:"machineID"`
				KubeletVersion string `json:"kubeletVersion"`
				OSImage        string `json:"osImage"`
			} `json:"nodeInfo"`
		} `json:"status"`
	} `json:"items"`
}

// ParseNodes reads a v1 NodeList, by name.
func ParseNodes(b []byte) ([]Node, error) {
	var l nodeList
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("node list: %w", err)
	}
	out := []Node{}
	for _, it := range l.Items {
		n := Node{Name: it.Metadata.Name, Ready: "Unknown", Unschedulable: it.Spec.Unschedulable, Kubelet: it.Status.NodeInfo.KubeletVersion,
			OSImage: it.Status.NodeInfo.OSImage, MachineID: it.Status.NodeInfo.MachineID}
		for _, c := range it.Status.Conditions {
			if c.Type == "Ready" {
				n.Ready, n.Reason = c.Status, c.Reason
			}
		}
		for _, a := range it.Status.Addresses {
			if a.Type == "InternalIP" && n.InternalIP == "" {
				n.InternalIP = a.Address
			}
		}
		for l := range it.Metadata.Labels {
			if r, ok := strings.CutPrefix(l, "node-role.kubernetes.io/"); ok && r != "" {
				n.Roles = append(n.Roles, r)
			}
		}
		sort.Strings(n.Roles)
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Nodes lists the cluster's nodes now; a failure is in the result's Error.
func (k *Kube) Nodes(ctx context.Context) Nodes {
	n := Nodes{Server: k.Server, At: time.Now().UTC(), Items: []Node{}}
	items, err := k.nodes(ctx)
	if err != nil {
		n.Error = err.Error()
		return n
	}
	n.Items = items
	return n
}

func (k *Kube) nodes(ctx context.Context) ([]Node, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.Server+"/api/v1/nodes", nil)
	if err != nil {
		return nil, fmt.Errorf("kubernetes %s: %w", k.Server, err)
	}
	req.Header.Set("Accept", "application/json")
	if k.Token != "" {
		req.Header.Set("Authorization", "Bearer "+k.Token)
	}
	hc := k.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("kubernetes %s: %w", k.Server, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("kubernetes %s: nodes: %w", k.Server, err)
	}
	if res.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(b))
		var st struct{ Message string }
		if json.Unmarshal(b, &st) == nil && st.Message != "" {
			msg = st.Message
		}
		return nil, fmt.Errorf("kubernetes %s: nodes: %s: %s", k.Server, res.Status, msg)
	}
	return ParseNodes(b)
}
