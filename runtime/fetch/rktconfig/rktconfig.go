// Package rktconfig reads rkt's configuration directories: JSON files with an "rktKind" and
// an "rktVersion", one kind per sub-directory, in the vendor's directory (/usr/lib/rkt), the
// administrator's (/etc/rkt) and a user's, later ones overriding earlier ones:
//
//	auth.d/*.json        rktKind "auth": credentials for hosts serving images over http(s),
//	                     rktKind "dockerAuth": credentials for Docker/OCI registries
//	paths.d/*.json       rktKind "paths": the data directory and stage1 images directory
//	stage1.d/*.json      rktKind "stage1": the default stage1 image
//
// A user's directory may only hold credentials, as in rkt.
package rktconfig

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// MaxFileSize bounds one config file.
const MaxFileSize = 1 << 20

// Credentials are a user and password (basic auth, dockerAuth) or a token (oauth).
type Credentials struct {
	User     string `json:"user,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
}

// Auth is one "auth" entry.
type Auth struct {
	Domains     []string    `json:"domains"`
	Type        string      `json:"type"` // "basic" or "oauth"
	Credentials Credentials `json:"credentials"`
}

// DockerAuth is one "dockerAuth" entry.
type DockerAuth struct {
	Registries  []string    `json:"registries"`
	Credentials Credentials `json:"credentials"`
}

// Paths is the "paths" kind.
type Paths struct {
	Data         string `json:"data,omitempty"`
	Stage1Images string `json:"stage1-images,omitempty"`
}

// Stage1 is the "stage1" kind: the default stage1 image.
type Stage1 struct {
	Name     string `json:"name,omitempty"`
	Version  string `json:"version,omitempty"`
	Location string `json:"location,omitempty"`
}

// Config is the effective configuration.
type Config struct {
	// Auth and DockerAuth map a host or registry to its credentials (the last file wins).
	Auth       map[string]Auth
	DockerAuth map[string]Credentials
	Paths      Paths
	Stage1     Stage1
}

// Dir is one configuration directory and whether it may set more than credentials.
type Dir struct {
	Path string
	User bool // a user's directory: credentials only
}

// Defaults are rkt's built-in paths.
var Defaults = Paths{Data: "/var/lib/rkt", Stage1Images: "/usr/lib/rkt/stage1-images"}

type header struct {
	Kind       string `json:"rktKind"`
	RktVersion string `json:"rktVersion"`
}

var subdirs = map[string][]string{
	"auth":       {"auth.d"},
	"dockerAuth": {"auth.d"},
	"paths":      {"paths.d"},
	"stage1":     {"stage1.d"},
}

// Load reads dirs in order (system, local, user), each later one overriding.
func Load(dirs ...Dir) (*Config, error) {
	c := &Config{Auth: map[string]Auth{}, DockerAuth: map[string]Credentials{}, Paths: Defaults}
	for _, d := range dirs {
		if d.Path == "" {
			continue
		}
		for _, sub := range []string{"auth.d", "paths.d", "stage1.d"} {
			if err := c.loadDir(filepath.Join(d.Path, sub), sub, d.User); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *Config) loadDir(dir, sub string, user bool) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("config %s: %w", dir, err)
	}
	for _, e := range ents { // ReadDir sorts by name: later files override earlier ones
		if e.IsDir() || filepath.Ext(e.Name()) != ".json" {
			continue
		}
		path := filepath.Join(dir, e.Name())
		data, err := readFile(path)
		if err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		if err := c.apply(data, sub, user); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
	}
	return nil
}

func readFile(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	return os.ReadFile(path)
}

// apply merges one file's content.
func (c *Config) apply(data []byte, sub string, user bool) error {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return fmt.Errorf("not JSON: %v", err)
	}
	if h.RktVersion != "v1" {
		return fmt.Errorf("rktVersion %q not supported (want \"v1\")", h.RktVersion)
	}
	allowed, ok := subdirs[h.Kind]
	if !ok {
		return fmt.Errorf("unknown rktKind %q", h.Kind)
	}
	if !slices.Contains(allowed, sub) {
		return fmt.Errorf("rktKind %q does not belong in %s/", h.Kind, sub)
	}
	if user && (h.Kind == "paths" || h.Kind == "stage1") {
		return fmt.Errorf("rktKind %q is not allowed in a user configuration", h.Kind)
	}
	strict := func(v any) error {
		d := json.NewDecoder(strings.NewReader(string(data)))
		d.DisallowUnknownFields()
		return d.Decode(v)
	}
	switch h.Kind {
	case "auth":
		var a struct {
			header
			Auth
		}
		if err := strict(&a); err != nil {
			return err
		}
		switch a.Type {
		case "basic":
			if a.Credentials.User == "" {
				return errors.New(`auth type "basic" needs credentials.user`)
			}
		case "oauth":
			if a.Credentials.Token == "" {
				return errors.New(`auth type "oauth" needs credentials.token`)
			}
		default:
			return fmt.Errorf("auth type %q unknown (basic, oauth)", a.Type)
		}
		if len(a.Domains) == 0 {
			return errors.New("auth has no domains")
		}
		for _, d := range a.Domains {
			c.Auth[strings.ToLower(d)] = Auth{Domains: []string{d}, Type: a.Type, Credentials: a.Credentials}
		}
	case "dockerAuth":
		var a struct {
			header
			DockerAuth
		}
		if err := strict(&a); err != nil {
			return err
		}
		if len(a.Registries) == 0 || a.Credentials.User == "" {
			return errors.New("dockerAuth needs registries and credentials.user")
		}
		for _, r := range a.Registries {
			c.DockerAuth[strings.ToLower(r)] = a.Credentials
		}
	case "paths":
		var p struct {
			header
			Paths
		}
		if err := strict(&p); err != nil {
			return err
		}
		if p.Data != "" {
			c.Paths.Data = p.Data
		}
		if p.Stage1Images != "" {
			c.Paths.Stage1Images = p.Stage1Images
		}
	case "stage1":
		var s struct {
			header
			Stage1
		}
		if err := strict(&s); err != nil {
			return err
		}
		if s.Name != "" {
			c.Stage1.Name = s.Name
		}
		if s.Version != "" {
			c.Stage1.Version = s.Version
		}
		if s.Location != "" {
			c.Stage1.Location = s.Location
		}
	}
	return nil
}

// Header returns the request headers for host ("example.com" or "example.com:8443"): the
// credentials configured for it, if any.
func (c *Config) Header(host string) http.Header {
	a, ok := c.Auth[strings.ToLower(host)]
	if !ok {
		if i := strings.LastIndex(host, ":"); i > 0 {
			a, ok = c.Auth[strings.ToLower(host[:i])]
		}
	}
	if !ok {
		return nil
	}
	h := http.Header{}
	switch a.Type {
	case "basic":
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(a.Credentials.User+":"+a.Credentials.Password)))
	case "oauth":
		h.Set("Authorization", "Bearer "+a.Credentials.Token)
	}
	return h
}

// Docker returns the credentials for a registry host, if any.
func (c *Config) Docker(registry string) (Credentials, bool) {
	cr, ok := c.DockerAuth[strings.ToLower(registry)]
	return cr, ok
}

// entry is one element of `rkt config` output.
type entry map[string]any

// Stage0 renders the config as `rkt config` prints it: {"stage0": [entries...]}, each entry
// a complete config file of its kind.
func (c *Config) Stage0() map[string][]entry {
	var out []entry
	domains := make([]string, 0, len(c.Auth))
	for d := range c.Auth {
		domains = append(domains, d)
	}
	sort.Strings(domains)
	for _, d := range domains {
		a := c.Auth[d]
		out = append(out, entry{"rktVersion": "v1", "rktKind": "auth", "domains": []string{d}, "type": a.Type, "credentials": a.Credentials})
	}
	regs := make([]string, 0, len(c.DockerAuth))
	for r := range c.DockerAuth {
		regs = append(regs, r)
	}
	sort.Strings(regs)
	for _, r := range regs {
		out = append(out, entry{"rktVersion": "v1", "rktKind": "dockerAuth", "registries": []string{r}, "credentials": c.DockerAuth[r]})
	}
	out = append(out, entry{"rktVersion": "v1", "rktKind": "paths", "data": c.Paths.Data, "stage1-images": c.Paths.Stage1Images})
	if c.Stage1 != (Stage1{}) {
		out = append(out, entry{"rktVersion": "v1", "rktKind": "stage1", "name": c.Stage1.Name, "version": c.Stage1.Version, "location": c.Stage1.Location})
	}
	return map[string][]entry{"stage0": out}
}
