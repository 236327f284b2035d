package pipeline

// benchDecode decodes a message as the worker does, with room for hint
// fields.
func benchDecode(b []byte, hint int) (map[string]any, error) { return decodeFields(b, hint) }
