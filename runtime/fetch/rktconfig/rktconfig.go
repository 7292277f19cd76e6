// Package rktconfig reads rkt's configuration directories: JSON files with an "rktKind" and
// an "rktVersion", one kind per sub-directory, in the vendor's directory (/usr/lib/rkt), the
// administrator's (/etc/rkt) and a user's, later ones overriding earlier ones:
//
//	auth.d/*.json        rktKind "auth": credentials for hosts serving images over http(s),
//	                     rktKind "dockerAuth": credentials for Docker/OCI registries
//	paths.d/*.json       rktKind "paths": the data directory and stage1 images directory
//	stage1.d/*.json      rktKind "stage1": the default stage1 image
//	store.d/*.json       rktKind "store": limits on what an image may extract to in the
//	                     store (Cairn's own kind: rkt had no limit)
//
// A user's directory may only hold credentials, as in rkt.
package rktconfig

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dustin/go-humanize"
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

// Store is the "store" kind: limits on what one image may extract to. A zero field is not
// set, and the store's default applies.
type Store struct {
	MaxImageSize        int64 // bytes of file content; "20GiB", "500MB" or a number of bytes
	MaxImageEntries     int64 // files, directories and links
	MaxCompressionRatio int64 // extracted size over the archive's, per layer
	// From names, by field ("maxImageSize", ...), the file that set it.
	From map[string]string
}

// Config is the effective configuration.
type Config struct {
	// Auth and DockerAuth map a host or registry to its credentials (the last file wins).
	Auth       map[string]Auth
	DockerAuth map[string]Credentials
	Paths      Paths
	Stage1     Stage1
	Store      Store
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
	"store":      {"store.d"},
}

// Load reads dirs in order (system, local, user), each later one overriding.
func Load(dirs ...Dir) (*Config, error) {
	c := &Config{Auth: map[string]Auth{}, DockerAuth: map[string]Credentials{}, Paths: Defaults}
	for _, d := range dirs {
		if d.Path == "" {
			continue
		}
		for _, sub := range []string{"auth.d", "paths.d", "stage1.d", "store.d"} {
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
		if err := c.apply(path, data, sub, user); err != nil {
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

// apply merges the content of one file, path.
func (c *Config) apply(path string, data []byte, sub string, user bool) error {
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
	if user && h.Kind != "auth" && h.Kind != "dockerAuth" {
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
	case "store":
		var s struct {
			header
			MaxImageSize        *size  `json:"maxImageSize"`
			MaxImageEntries     *int64 `json:"maxImageEntries"`
			MaxCompressionRatio *int64 `json:"maxCompressionRatio"`
		}
		if err := strict(&s); err != nil {
			return err
		}
		for _, f := range []struct {
			name string
			v    *int64
			dst  *int64
		}{
			{"maxImageSize", (*int64)(s.MaxImageSize), &c.Store.MaxImageSize},
			{"maxImageEntries", s.MaxImageEntries, &c.Store.MaxImageEntries},
			{"maxCompressionRatio", s.MaxCompressionRatio, &c.Store.MaxCompressionRatio},
		} {
			if f.v == nil {
				continue
			}
			if *f.v <= 0 {
				return fmt.Errorf("%s must be positive", f.name)
			}
			*f.dst = *f.v
			if c.Store.From == nil {
				c.Store.From = map[string]string{}
			}
			c.Store.From[f.name] = path
		}
	}
	return nil
}

// size is a number of bytes written as a JSON number or as a string with a unit ("20GiB",
// "500 MB", "1048576").
type size int64

func (z *size) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		n, err := humanize.ParseBytes(s)
		if err != nil || n > math.MaxInt64 {
			return fmt.Errorf("size %q: want bytes, or a number with a unit such as 20GiB or 500MB", s)
		}
		*z = size(n)
		return nil
	}
	var n int64
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&n); err != nil {
		return fmt.Errorf("size %s: want bytes, or a string with a unit such as \"20GiB\"", b)
	}
	*z = size(n)
	return nil
}

// formatSize writes n back as the config takes it: in the largest binary unit that holds it
// exactly, else in bytes.
func formatSize(n int64) string {
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
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
	if st := c.Store; st.MaxImageSize != 0 || st.MaxImageEntries != 0 || st.MaxCompressionRatio != 0 {
		e := entry{"rktVersion": "v1", "rktKind": "store"}
		if st.MaxImageSize != 0 {
			e["maxImageSize"] = formatSize(st.MaxImageSize)
		}
		if st.MaxImageEntries != 0 {
			e["maxImageEntries"] = st.MaxImageEntries
		}
		if st.MaxCompressionRatio != 0 {
			e["maxCompressionRatio"] = st.MaxCompressionRatio
		}
		out = append(out, e)
	}
	return map[string][]entry{"stage0": out}
}
