package sidecarconfig

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEncodeKeepsOnlyWhatDiffers(t *testing.T) {
	if got, err := Encode(Default()); err != nil || string(got) != "{}" {
		t.Fatalf("Encode(Default()) = %s, %v; want {}", got, err)
	}
	for name, c := range variants() {
		t.Run(name, func(t *testing.T) {
			enc, err := Encode(c)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode(%s): %v", enc, err)
			}
			if !reflect.DeepEqual(normalize(t, back), normalize(t, c)) {
				t.Fatalf("round trip changed the config:\n got %#v\nwant %#v\n(settings %s)", back, c, enc)
			}
			full, _ := Render(c)
			again, _ := Render(back)
			if string(full) != string(again) {
				t.Fatalf("the decoded settings render differently")
			}
			if len(enc) >= len(full)/2 {
				t.Errorf("settings are %d bytes for a %d-byte config: %s", len(enc), len(full), enc)
			}
		})
	}
}

// normalize is c as the JSON round trip gives it (numbers in exporter
// settings become float64, for one).
func normalize(t *testing.T, c Config) Config {
	t.Helper()
	m, err := asMap(c)
	if err != nil {
		t.Fatal(err)
	}
	var out Config
	raw, _ := json.Marshal(m)
	if err := strictUnmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncodeWritesDurationsAsPeopleDo(t *testing.T) {
	c := Default()
	c.DrainTimeout = 18 * time.Second
	c.KubeletStats.Interval = 10 * time.Second
	enc, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"drainTimeout":"18s","kubeletStats":{"interval":"10s"}}`
	if string(enc) != want {
		t.Fatalf("Encode = %s, want %s", enc, want)
	}
}

func TestEncodeKeepsEmptiedLists(t *testing.T) {
	c := Default()
	c.LogExclude = []string{}
	c.Signals = []Signal{Traces}
	enc, err := Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Decode(enc)
	if err != nil {
		t.Fatal(err)
	}
	if len(back.LogExclude) != 0 || !reflect.DeepEqual(back.Signals, []Signal{Traces}) {
		t.Fatalf("Decode(%s) = exclude %v signals %v", enc, back.LogExclude, back.Signals)
	}
}

func TestDecodeRefusesWhatItDoesNotKnow(t *testing.T) {
	for in, want := range map[string]string{
		`{"clusterNmae":"x"}`:                  "clusterNmae",
		`{"kubeletStats":{"intervall":"1s"}}`:  "intervall",
		`{"drainTimeout":20}`:                  "duration",
		`{"kubeletStats":{"interval":"soon"}}`: "soon",
		`[1]`:                                  "not a JSON object",
	} {
		if _, err := Decode([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%s) = %v, want an error naming %q", in, err, want)
		}
	}
}

func TestHashFollowsTheRenderedConfig(t *testing.T) {
	a, _ := Render(Default())
	c := Default()
	c.ClusterName = "prod"
	b, _ := Render(c)
	if Hash(a) == Hash(b) || Hash(a) != Hash(append([]byte(nil), a...)) || len(Hash(a)) != 16 {
		t.Fatalf("Hash: %s %s", Hash(a), Hash(b))
	}
}
