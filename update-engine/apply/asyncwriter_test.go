package apply

import (
	"bytes"
	"errors"
	"testing"
)

type failAfter struct {
	n   int
	buf bytes.Buffer
}

func (f *failAfter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.n {
		return 0, errors.New("device full")
	}
	return f.buf.Write(p)
}

func TestAsyncWriter(t *testing.T) {
	var out bytes.Buffer
	a := newAsyncWriter(&out, 7, 2)
	want := bytes.Repeat([]byte("0123456789"), 1000)
	for i := 0; i < len(want); i += 13 {
		a.Write(want[i:min(i+13, len(want))])
	}
	if err := a.Close(); err != nil || !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("%v, %d bytes out of %d", err, out.Len(), len(want))
	}
	f := &failAfter{n: 20}
	a = newAsyncWriter(f, 8, 2)
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = a.Write([]byte("0123456789"))
	}
	if cerr := a.Close(); cerr == nil || (err != nil && err.Error() != "device full") {
		t.Fatalf("write error lost: %v %v", err, cerr)
	}
}
