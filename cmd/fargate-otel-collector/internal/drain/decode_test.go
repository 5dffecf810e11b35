package drain

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// checkpoint encodes offsets as fileconsumer's checkpoint.Save does (JSON:
// the count, then one object per file, with the fields it writes).
func checkpoint(t testing.TB, entries ...fileOffset) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	if err := enc.Encode(len(entries)); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		md := map[string]any{
			"Fingerprint":     map[string]any{"first_bytes": "MjAyNi0xMS0yMlQ="},
			"Offset":          e.Offset,
			"RecordNum":       3,
			"FileAttributes":  map[string]any{"log.file.path": e.Path, "log.file.name": "0.log"},
			"HeaderFinalized": false,
			"FlushState":      map[string]any{"LastDataChange": "2026-11-22T18:00:00Z", "LastDataLength": 0},
		}
		if e.Path == "" {
			delete(md["FileAttributes"].(map[string]any), "log.file.path")
		}
		if err := enc.Encode(md); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDecodeCheckpoint(t *testing.T) {
	for _, tt := range []struct {
		name    string
		raw     []byte
		want    []fileOffset
		wantErr bool
	}{
		{name: "nothing saved yet", raw: nil},
		{name: "no files", raw: checkpoint(t)},
		{name: "two files", raw: checkpoint(t, fileOffset{"/p/a/0.log", 10}, fileOffset{"/p/a/0.log.20261122-180000", 99}),
			want: []fileOffset{{"/p/a/0.log", 10}, {"/p/a/0.log.20261122-180000", 99}}},
		{name: "a path seen twice keeps its last entry (the latest poll's)",
			raw:  checkpoint(t, fileOffset{"/p/a/0.log", 5000}, fileOffset{"/p/b/0.log", 1}, fileOffset{"/p/a/0.log", 7}),
			want: []fileOffset{{"/p/a/0.log", 7}, {"/p/b/0.log", 1}}},
		{name: "without include_file_path", raw: checkpoint(t, fileOffset{"", 3}), wantErr: true},
		{name: "protobuf encoding", raw: []byte{0x0a, 0x03, 'a', 'b', 'c'}, wantErr: true},
		{name: "truncated", raw: checkpoint(t, fileOffset{"/p/a/0.log", 10})[:20], wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCheckpoint(tt.raw)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// queueMeta encodes exporterhelper's PersistentMetadata as protobuf does.
func queueMeta(items, bytesSize int64, read, write uint64, dispatched ...uint64) []byte {
	var b []byte
	if items != 0 {
		b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(items))
	}
	if bytesSize != 0 {
		b = protowire.AppendTag(b, 2, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, uint64(bytesSize))
	}
	if read != 0 {
		b = protowire.AppendTag(b, 3, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, read)
	}
	if write != 0 {
		b = protowire.AppendTag(b, 4, protowire.Fixed64Type)
		b = protowire.AppendFixed64(b, write)
	}
	if len(dispatched) > 0 {
		var packed []byte
		for _, d := range dispatched {
			packed = protowire.AppendFixed64(packed, d)
		}
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, packed)
	}
	return b
}

func TestDecodeQueue(t *testing.T) {
	for _, tt := range []struct {
		name    string
		raw     []byte
		want    queueState
		empty   bool
		wantErr bool
	}{
		{name: "never written", raw: nil, empty: true},
		{name: "all sent", raw: queueMeta(0, 0, 42, 42), want: queueState{Read: 42, Write: 42}, empty: true},
		{name: "waiting", raw: queueMeta(300, 9000, 40, 42), want: queueState{Items: 300, Bytes: 9000, Read: 40, Write: 42}},
		{name: "being sent", raw: queueMeta(100, 3000, 42, 42, 41), want: queueState{Items: 100, Bytes: 3000, Read: 42, Write: 42, Dispatched: 1}},
		{name: "an unknown field is skipped", raw: append(queueMeta(0, 0, 7, 7), protowire.AppendVarint(protowire.AppendTag(nil, 9, protowire.VarintType), 5)...),
			want: queueState{Read: 7, Write: 7}, empty: true},
		{name: "write behind read", raw: queueMeta(0, 0, 8, 7), wantErr: true},
		{name: "truncated", raw: queueMeta(0, 0, 8, 9)[:5], wantErr: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeQueue(tt.raw)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.Empty() != tt.empty {
				t.Fatalf("Empty() = %v, want %v (%d requests)", got.Empty(), tt.empty, got.Requests())
			}
		})
	}
}

func FuzzDecodeQueue(f *testing.F) {
	f.Add(queueMeta(1, 2, 3, 4, 5, 6))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := decodeQueue(b)
		if err == nil && q.Requests() < 0 {
			t.Fatalf("negative requests: %+v", q)
		}
	})
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add(checkpoint(f, fileOffset{"/p/a/0.log", 10}, fileOffset{"/p/a/0.log", 12}))
	f.Add([]byte("3\n{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		offsets, err := decodeCheckpoint(b)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, o := range offsets {
			if o.Path == "" || seen[o.Path] {
				t.Fatalf("an empty or repeated path in %+v", offsets)
			}
			seen[o.Path] = true
		}
	})
}
