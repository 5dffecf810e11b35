package nodeproxy

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// The kubelet's /pods and /stats/summary list every pod on the node. On
// Fargate that is the caller's own pod; on a shared node the proxy keeps only
// the caller's entries, so that a pod learns nothing about its neighbours.
// Both filters keep every other field as the kubelet sent it.

// filterPodList keeps the items of a PodList whose metadata.uid is uid.
func filterPodList(body []byte, uid string) ([]byte, error) {
	var list map[string]json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("decode kubelet /pods: %w", err)
	}
	var items []json.RawMessage
	if raw, ok := list["items"]; ok && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, fmt.Errorf("decode kubelet /pods items: %w", err)
		}
	}
	kept := make([]json.RawMessage, 0, 1)
	for _, it := range items {
		var meta struct {
			Metadata struct {
				UID string `json:"uid"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(it, &meta); err != nil {
			return nil, fmt.Errorf("decode kubelet /pods item: %w", err)
		}
		if meta.Metadata.UID == uid {
			kept = append(kept, it)
		}
	}
	return marshalWith(list, "items", kept)
}

// filterSummary keeps the node section and the pods[] entries whose
// podRef.uid is uid.
func filterSummary(body []byte, uid string) ([]byte, error) {
	var summary map[string]json.RawMessage
	if err := json.Unmarshal(body, &summary); err != nil {
		return nil, fmt.Errorf("decode kubelet /stats/summary: %w", err)
	}
	var pods []json.RawMessage
	if raw, ok := summary["pods"]; ok && !bytes.Equal(raw, []byte("null")) {
		if err := json.Unmarshal(raw, &pods); err != nil {
			return nil, fmt.Errorf("decode kubelet /stats/summary pods: %w", err)
		}
	}
	kept := make([]json.RawMessage, 0, 1)
	for _, p := range pods {
		var ref struct {
			PodRef struct {
				UID string `json:"uid"`
			} `json:"podRef"`
		}
		if err := json.Unmarshal(p, &ref); err != nil {
			return nil, fmt.Errorf("decode kubelet /stats/summary pod: %w", err)
		}
		if ref.PodRef.UID == uid {
			kept = append(kept, p)
		}
	}
	return marshalWith(summary, "pods", kept)
}

func marshalWith(obj map[string]json.RawMessage, key string, items []json.RawMessage) ([]byte, error) {
	raw, err := json.Marshal(items)
	if err != nil {
		return nil, err
	}
	obj[key] = raw
	return json.Marshal(obj)
}
