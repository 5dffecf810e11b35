package sidecarconfig

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"time"
)

// The pod carries its collector's settings, not the collector's YAML: a
// Config encoded as JSON with only what differs from Default(). The
// collector distribution renders the YAML from them at start (its `fargate`
// config provider calls Render), so that an injected pod's spec holds a few
// hundred bytes instead of kilobytes of YAML, the webhook sends a small
// patch, and `kubectl get pod -o yaml` shows what is particular to the pod.
// `fargate-otel render` prints the whole effective config.

const (
	// SettingsEnvVar is the sidecar env var that carries Encode's output.
	SettingsEnvVar = "FARGATE_OTEL_SETTINGS"
	// SettingsScheme is the config provider scheme of the collector
	// distribution that renders settings: fargate:env:NAME or fargate:file:PATH.
	SettingsScheme = "fargate"
	// SettingsConfigURI is the sidecar's --config value.
	SettingsConfigURI = SettingsScheme + ":env:" + SettingsEnvVar
)

// Encode returns c as compact JSON: the members that differ from Default(),
// recursively through objects (lists are compared whole). Decode(Encode(c))
// equals c for every valid c.
func Encode(c Config) ([]byte, error) {
	full, err := asMap(c)
	if err != nil {
		return nil, err
	}
	base, err := asMap(Default())
	if err != nil {
		return nil, err
	}
	diff(full, base)
	// No HTML escaping: the settings are read by people in the pod spec.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(full); err != nil {
		return nil, fmt.Errorf("encode collector settings: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Decode reads settings written by Encode: Default() with data's members
// laid over it. Unknown members are refused, so that a typo in hand-written
// settings says so instead of being ignored.
func Decode(data []byte) (Config, error) {
	base, err := asMap(Default())
	if err != nil {
		return Config{}, err
	}
	var over map[string]any
	if err := json.Unmarshal(data, &over); err != nil {
		return Config{}, fmt.Errorf("collector settings are not a JSON object: %w", err)
	}
	overlay(base, over)
	merged, err := json.Marshal(base)
	if err != nil {
		return Config{}, fmt.Errorf("decode collector settings: %w", err)
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(merged))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("collector settings: %w", err)
	}
	return c, nil
}

// Hash names a rendered config: equal configs, equal hashes. The status
// annotation records the hash of a pod's bootstrap config and the fleet
// reports the hash of what each collector runs.
func Hash(rendered []byte) string {
	sum := sha256.Sum256(rendered)
	return hex.EncodeToString(sum[:8])
}

func asMap(v any) (map[string]any, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode collector settings: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("encode collector settings: %w", err)
	}
	return m, nil
}

// diff removes from m what equals base, descending into objects.
func diff(m, base map[string]any) {
	for k, v := range m {
		b, ok := base[k]
		if !ok {
			continue
		}
		vm, vIsMap := v.(map[string]any)
		bm, bIsMap := b.(map[string]any)
		if vIsMap && bIsMap {
			diff(vm, bm)
			if len(vm) == 0 {
				delete(m, k)
			}
			continue
		}
		if reflect.DeepEqual(v, b) {
			delete(m, k)
		}
	}
}

// overlay lays over onto base, descending into objects; anything else
// (lists included) replaces.
func overlay(base, over map[string]any) {
	for k, v := range over {
		vm, vIsMap := v.(map[string]any)
		bm, bIsMap := base[k].(map[string]any)
		if vIsMap && bIsMap {
			overlay(bm, vm)
			continue
		}
		base[k] = v
	}
}

// Duration is a time.Duration written as Go writes it ("30s") in JSON.
type Duration time.Duration

// MarshalJSON writes d as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a duration string such as "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Config and KubeletStats write their durations as strings ("30s").

// MarshalJSON writes c with its durations as strings.
func (c Config) MarshalJSON() ([]byte, error) {
	type plain Config
	return json.Marshal(struct {
		plain
		DrainTimeout Duration `json:"drainTimeout"`
	}{plain(c), Duration(c.DrainTimeout)})
}

// UnmarshalJSON reads what MarshalJSON writes, refusing unknown members.
func (c *Config) UnmarshalJSON(b []byte) error {
	type plain Config
	v := struct {
		*plain
		DrainTimeout Duration `json:"drainTimeout"`
	}{plain: (*plain)(c), DrainTimeout: Duration(c.DrainTimeout)}
	if err := strictUnmarshal(b, &v); err != nil {
		return err
	}
	c.DrainTimeout = time.Duration(v.DrainTimeout)
	return nil
}

// MarshalJSON writes k with its interval as a string.
func (k KubeletStats) MarshalJSON() ([]byte, error) {
	type plain KubeletStats
	return json.Marshal(struct {
		plain
		Interval Duration `json:"interval"`
	}{plain(k), Duration(k.Interval)})
}

// UnmarshalJSON reads what MarshalJSON writes, refusing unknown members.
func (k *KubeletStats) UnmarshalJSON(b []byte) error {
	type plain KubeletStats
	v := struct {
		*plain
		Interval Duration `json:"interval"`
	}{plain: (*plain)(k), Interval: Duration(k.Interval)}
	if err := strictUnmarshal(b, &v); err != nil {
		return fmt.Errorf("kubeletStats: %w", err)
	}
	k.Interval = time.Duration(v.Interval)
	return nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
