package omaha

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Bool is a boolean attribute, read as update_engine read them: "true" (in any case) or "1"
// is true, anything else false. None of them decides anything in Cairn, so a server's odd
// spelling of one is no reason to refuse its answer.
type Bool bool

// UnmarshalXMLAttr reads a Bool.
func (b *Bool) UnmarshalXMLAttr(a xml.Attr) error {
	v := strings.TrimSpace(a.Value)
	*b = Bool(strings.EqualFold(v, "true") || v == "1")
	return nil
}

// Int is a whole-number attribute (ismachine, ping active).
type Int int

// UnmarshalXMLAttr reads an Int; an error names the attribute.
func (n *Int) UnmarshalXMLAttr(a xml.Attr) error {
	v, err := intAttr(a)
	*n = Int(v)
	return err
}

// UnmarshalXMLAttr reads an eventtype; an error names the attribute.
func (t *EventType) UnmarshalXMLAttr(a xml.Attr) error {
	v, err := intAttr(a)
	*t = EventType(v)
	return err
}

// UnmarshalXMLAttr reads an eventresult; an error names the attribute.
func (r *EventResult) UnmarshalXMLAttr(a xml.Attr) error {
	v, err := intAttr(a)
	*r = EventResult(v)
	return err
}

// UnmarshalXMLAttr reads an errorcode; an error names the attribute. update_engine ORs
// flags into the high bits (2^31 is "dev mode"), so the code may not fit 32 bits.
func (c *ErrorCode) UnmarshalXMLAttr(a xml.Attr) error {
	v, err := intAttr(a)
	*c = ErrorCode(v)
	return err
}

func intAttr(a xml.Attr) (int, error) {
	v, err := strconv.ParseInt(strings.TrimSpace(a.Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("attribute %s=%q: not a whole number", a.Name.Local, a.Value)
	}
	return int(v), nil
}

// UnmarshalXML reads a <package>, so that a size that is no byte count is an error naming
// the package and the attribute rather than strconv's bare complaint.
func (p *Package) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	var size string
	haveSize := false
	for _, a := range start.Attr {
		switch a.Name.Local {
		case "name":
			p.Name = a.Value
		case "hash":
			p.SHA1 = a.Value
		case "hash_sha256":
			p.SHA256 = a.Value
		case "size":
			size, haveSize = a.Value, true
		case "required":
			if err := p.Required.UnmarshalXMLAttr(a); err != nil {
				return err
			}
		}
	}
	if haveSize {
		n, err := strconv.ParseInt(strings.TrimSpace(size), 10, 64)
		if err != nil {
			return fmt.Errorf("package %q: attribute size=%q: not a byte count", p.Name, size)
		}
		p.Size = n
	}
	// Children (update_engine's <metadata>) are not used.
	return d.Skip()
}

// sha256Hex reads a SHA-256 written in hex (Nebraska's hash_sha256) or base64 (go-omaha's
// hash_sha256, the postinstall action's sha256) and returns it in hex.
func sha256Hex(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) == 2*sha256.Size {
		if b, err := hex.DecodeString(s); err == nil {
			return hex.EncodeToString(b), nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == sha256.Size {
			return hex.EncodeToString(b), nil
		}
	}
	return "", errNotSHA256
}

var errNotSHA256 = errors.New("neither the hex nor the base64 of a SHA-256")
