package fleet

import (
	"encoding/json"
	"net/url"

	"github.com/coreos/ignition/v2/config/v3_4/types"
)

// Config is a first-boot config (Ignition spec 3.4) being put together, in Ignition's own
// types: what the tests hand the machines is what a Flatcar user would write.
type Config struct{ types.Config }

// NewConfig is a config that lets key log in as root.
func NewConfig(key *Key) *Config {
	c := &Config{}
	c.Ignition.Version = "3.4.0"
	c.Passwd.Users = []types.PasswdUser{{Name: "root", SSHAuthorizedKeys: []types.SSHAuthorizedKey{types.SSHAuthorizedKey(key.Authorized)}}}
	return c
}

// File adds a file with contents (a data: URL) and mode.
func (c *Config) File(path string, mode int, contents string) *Config {
	src := "data:," + url.PathEscape(contents)
	overwrite := true
	c.Storage.Files = append(c.Storage.Files, types.File{
		Node:          types.Node{Path: path, Overwrite: &overwrite},
		FileEmbedded1: types.FileEmbedded1{Mode: &mode, Contents: types.Resource{Source: &src}},
	})
	return c
}

// Unit adds a systemd unit: contents "" enables a unit the image has.
func (c *Config) Unit(name, contents string, enabled bool) *Config {
	u := types.Unit{Name: name, Enabled: &enabled}
	if contents != "" {
		u.Contents = &contents
	}
	c.Systemd.Units = append(c.Systemd.Units, u)
	return c
}

// JSON is the config as a machine reads it.
func (c *Config) JSON() ([]byte, error) { return json.Marshal(c.Config) }
