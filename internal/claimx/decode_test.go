package claimx

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"testing"
)

// refDecode is the encoding/json reference the fast decoder must match.
func refDecode(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return refConvert(v), nil
}

func refConvert(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = refConvert(e)
		}
	case []any:
		for i, e := range t {
			t[i] = refConvert(e)
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(t), 10, 64); err == nil {
			return i
		}
		f, _ := strconv.ParseFloat(string(t), 64)
		return f
	}
	return v
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{sampleEvent, `{"a":[1,-2,3.5,1e3,-0,12345678901234567890,9223372036854775807,-9223372036854775808]}`,
		`"\u00e9\ud83d\ude00\ud800x\"\\\/\b\f\n\r\t"`, `[true,false,null,{}]`, `{"a":1,"a":2}`, "\"\xff\xfe\"", `{"a" 1}`, `[1,]`, `01`, `1.`, `-`, `1e`, `{} }`, ` {"k":"v"} `} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeJSON(b)
		if valid := json.Valid(b); (err == nil) != valid {
			if !valid || !errors.Is(err, ErrMalformedBody) || !bytes.Contains([]byte(err.Error()), []byte("range")) {
				t.Fatalf("%q: err %v, json.Valid %v", b, err, valid)
			}
			return
		}
		if err != nil {
			return
		}
		want, err := refDecode(b)
		if err != nil {
			t.Fatalf("%q: reference failed: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, want %#v", b, got, want)
		}
	})
}

func BenchmarkDecodeRow(b *testing.B) {
	body := []byte(`{"assignment_id":1000008,"task_id":32513,"task_name":"iTel Cabinet Repair Form","project_id":"5000001","status":"in_progress","previous_status":"assigned","assigned_to_user_id":20111,"assigned_by_user_id":10012,"assigned_to":{"user_id":20111,"first_name":"Ana","last_name":"Chen","email":"ana.chen@fieldtech.example"},"created_at":"2026-01-05T09:00:00.000Z","updated_at":"2026-01-05T12:00:00.000Z","completed_at":null,"form_response":{"answers":{"linear_feet":12.5,"cabinet_type":"Base"},"photos":[{"media_id":7000016,"file_name":"IMG_1234.jpg"}]}}`)
	b.Run("fast", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			decodeJSON(body)
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			refDecode(body)
		}
	})
}
