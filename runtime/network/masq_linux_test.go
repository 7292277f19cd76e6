package network

import (
	"encoding/json"
	"testing"
)

func TestTakeOverMasq(t *testing.T) {
	for _, c := range []struct {
		conf string
		take bool
	}{
		{`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ptp","ipMasq":true}]}`, true},
		{`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"bridge","ipMasq":true},{"type":"portmap"}]}`, true},
		{`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ptp","ipMasq":false}]}`, false},
		{`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ptp"}]}`, false},
		{`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"flannel","ipMasq":true}]}`, false}, // its delegate's business
		{`{"cniVersion":"0.4.0","name":"n","plugins":[{"type":"ptp","ipMasq":"yes"}]}`, false},
		{`{"cniVersion":"0.4.0","name":"n","plugins":[]}`, false},
		{`{"cniVersion":"0.4.0","name":"n"}`, false},
	} {
		out, took, err := takeOverMasq([]byte(c.conf))
		if err != nil || took != c.take {
			t.Errorf("%s: took %v, %v; want %v", c.conf, took, err, c.take)
			continue
		}
		var raw struct {
			Plugins []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(out, &raw); err != nil {
			t.Fatalf("%s: output %s: %v", c.conf, out, err)
		}
		if took && raw.Plugins[0]["ipMasq"] != false {
			t.Errorf("%s: plugin still masquerades: %s", c.conf, out)
		}
	}
	if _, _, err := takeOverMasq([]byte(`{"plugins":[`)); err == nil {
		t.Error("a truncated config was accepted")
	}
}

func TestTeardownNeedsNetns(t *testing.T) {
	st := func(confs ...string) *State {
		s := &State{}
		for _, c := range confs {
			s.Nets = append(s.Nets, Attachment{Conf: c, Phase: Added})
		}
		return s
	}
	phase := func(s *State, p Phase) *State { s.Nets[len(s.Nets)-1].Phase = p; return s }
	for _, c := range []struct {
		st   *State
		want bool
	}{
		{st(), false},
		{st(`{"plugins":[{"type":"ptp","ipMasq":false},{"type":"portmap"}]}`), false},
		{st(`{"plugins":[{"type":"macvlan"}]}`, `{"plugins":[{"type":"bridge"}]}`), false},
		{st(`{"plugins":[{"type":"ptp","ipMasq":true}]}`), true},                                        // finds its rules through the pod's link
		{st(`{"plugins":[{"type":"ptp"}]}`, `{"plugins":[{"type":"flannel"}]}`), true},                  // unknown to Cairn
		{st(`{"plugins":[{"type":"host-device"}]}`), true},                                              // moves the device back
		{st(`{"plugins":[{"type":"bridge","macspoofchk":true}]}`), true},                                // its chain goes with the link
		{phase(st(`{"plugins":[{"type":"ptp"}]}`), Adding), true},                                       // may have made links no record names
		{phase(st(`{"plugins":[{"type":"ptp"}]}`, `{"plugins":[{"type":"bridge"}]}`), AddFailed), true}, // the same, for a plugin that failed
		{st(`not json`), true},
		{st(`{"plugins":[]}`), true},
	} {
		if got := c.st.TeardownNeedsNetns(); got != c.want {
			t.Errorf("%+v: %v, want %v", c.st.Nets, got, c.want)
		}
	}
}
