// Package jsonx is kpipe's one-pass JSON: a decoder of JSON objects into
// map[string]any with exact integers and input limits, and the JSON string
// escaper every hand-written encoder in kpipe uses.
//
// DecodeObject and DecodeObjectOpts decode one object in one pass, with
// int64 for integral numbers and float64 for others (no json.Number, no
// reflection), refusing input nested deeper than a limit (ErrTooDeep) and
// strings that are not valid UTF-8 (ErrInvalidUTF8), each as a
// *DecodeError naming the offset. AppendString and AppendStringHTML write a
// JSON string literal byte for byte as encoding/json does, without and with
// HTML escaping.
//
// The package imports nothing but the standard library and knows nothing of
// Kafka, ClaimX or Delta, so any layer may use it.
//
//	fields, err := jsonx.DecodeObjectOpts(msg, 16, jsonx.DecodeOptions{MaxDepth: 32})
//	if errors.Is(err, jsonx.ErrTooDeep) { ... }
//	id, _ := fields["task_id"].(int64)
//	b = jsonx.AppendString(b, name)
package jsonx
