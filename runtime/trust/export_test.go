package trust

import (
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
)

func armorEncode(w io.Writer, typ string) (io.WriteCloser, error) { return armor.Encode(w, typ, nil) }
