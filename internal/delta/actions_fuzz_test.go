package delta

import (
	"bytes"
	"testing"
)

func FuzzParseLogEntry(f *testing.F) {
	seeds := []string{
		`{"commitInfo":{"timestamp":1,"operation":"WRITE"}}` + "\n" + `{"protocol":{"minReaderVersion":1,"minWriterVersion":4}}`,
		`{"metaData":{"id":"x","format":{"provider":"parquet","options":{}},"schemaString":"{\"type\":\"struct\",\"fields\":[{\"name\":\"a\",\"type\":\"long\",\"nullable\":true,\"metadata\":{}}]}","partitionColumns":[],"configuration":{}}}`,
		`{"add":{"path":"a=1/f.parquet","partitionValues":{"a":"1"},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":1}"}}`,
		`{"remove":{"path":"f","deletionTimestamp":1,"dataChange":true}}` + "\n" + `{"txn":{"appId":"w","version":3}}`,
		`{"add":{"path":"f"`,      // truncated
		`{"add":"not an object"}`, // wrong type
		"\x00\xff garbage",
		``,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		acts, err := parseLogEntry(data)
		if err != nil {
			return
		}
		// Whatever parses re-encodes and parses to the same actions.
		var kept []action
		for _, a := range acts {
			if a.Add != nil || a.Remove != nil || a.Txn != nil || a.Protocol != nil || a.MetaData != nil {
				kept = append(kept, a)
			}
		}
		enc, err := encodeLogEntry(kept)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		again, err := parseLogEntry(enc)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", enc, err)
		}
		enc2, err := encodeLogEntry(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not stable:\n%s\n%s", enc, enc2)
		}
	})
}
