package drain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// fileOffset is how far file_log has read one file.
type fileOffset struct {
	Path   string
	Offset int64
}

// decodeCheckpoint reads file_log's saved offsets: a JSON count followed by
// one JSON object per file, the last ones being the files of the latest
// poll (fileconsumer's checkpoint.Save, JSON encoding, the default). A path
// seen twice keeps its last entry: older entries describe a file that has
// since been renamed or replaced. Entries without log.file.path (the
// receiver's include_file_path off) cannot be matched to a file and are
// reported by the error.
func decodeCheckpoint(b []byte) ([]fileOffset, error) {
	if len(b) == 0 {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var n int
	if err := dec.Decode(&n); err != nil {
		return nil, fmt.Errorf("file_log checkpoint: not the JSON encoding (count: %w)", err)
	}
	var out []fileOffset
	index := map[string]int{}
	for i := 0; i < n; i++ {
		var md struct {
			Offset         int64
			FileAttributes map[string]any
		}
		if err := dec.Decode(&md); err != nil {
			return nil, fmt.Errorf("file_log checkpoint: entry %d: %w", i, err)
		}
		path, _ := md.FileAttributes["log.file.path"].(string)
		if path == "" {
			return nil, errors.New("file_log checkpoint: an entry without log.file.path (set include_file_path: true)")
		}
		if j, ok := index[path]; ok {
			out[j].Offset = md.Offset
			continue
		}
		index[path] = len(out)
		out = append(out, fileOffset{Path: path, Offset: md.Offset})
	}
	return out, nil
}

// queueState is a sending queue on disk (exporterhelper's
// PersistentMetadata: sizes, read and write indexes, requests being sent).
type queueState struct {
	Items, Bytes int64
	Read, Write  uint64
	Dispatched   int
}

// Requests is the number of requests not yet sent: queued or being sent.
func (q queueState) Requests() int64 {
	return int64(q.Write-q.Read) + int64(q.Dispatched)
}

// Empty reports whether everything queued has been sent.
func (q queueState) Empty() bool { return q.Requests() == 0 }

// decodeQueue parses the persistent queue's metadata (protobuf, fields 1-5 of
// exporterhelper/internal/queue/meta.proto). Missing metadata is an empty
// queue: the queue writes it with its first request.
func decodeQueue(b []byte) (queueState, error) {
	var q queueState
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return q, fmt.Errorf("queue metadata: %w", protowire.ParseError(n))
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			q.Items, n = int64(v), m
		case num == 2 && typ == protowire.Fixed64Type:
			v, m := protowire.ConsumeFixed64(b)
			q.Bytes, n = int64(v), m
		case num == 3 && typ == protowire.Fixed64Type:
			q.Read, n = protowire.ConsumeFixed64(b)
		case num == 4 && typ == protowire.Fixed64Type:
			q.Write, n = protowire.ConsumeFixed64(b)
		case num == 5 && typ == protowire.BytesType: // packed
			var packed []byte
			packed, n = protowire.ConsumeBytes(b)
			if n >= 0 {
				q.Dispatched += len(packed) / 8
			}
		case num == 5 && typ == protowire.Fixed64Type:
			_, n = protowire.ConsumeFixed64(b)
			q.Dispatched++
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return q, fmt.Errorf("queue metadata: field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	if q.Write < q.Read || q.Write-q.Read > 1<<62 {
		return q, fmt.Errorf("queue metadata: write index %d and read index %d make no queue", q.Write, q.Read)
	}
	return q, nil
}
