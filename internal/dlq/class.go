package dlq

import "slices"

// Error classes: the error_class of a record, and the label of the
// workers' error metrics. The set is closed: a worker records one of these
// and nothing else. docs/architecture.md ("Errors: what goes where") is the
// one table that says, for each, who emits it, what it means and what to do.
const (
	ClassMalformed        = "malformed"
	ClassTooLarge         = "too_large"
	ClassTooDeep          = "too_deep"
	ClassValidation       = "validation"
	ClassSchemaConflict   = "schema_conflict"
	ClassLookup           = "lookup"
	ClassHandler          = "handler"
	ClassUnknownEventType = "unknown_event_type"
	ClassNotFound         = "not_found"
	ClassAPIUnavailable   = "api_unavailable"
	ClassLookupFailed     = "lookup_failed"
	ClassPluginFailed     = "plugin_failed"
	ClassPublishRefused   = "publish_refused"
)

var classes = []string{
	ClassMalformed, ClassTooLarge, ClassTooDeep, ClassValidation, ClassSchemaConflict,
	ClassLookup, ClassHandler, ClassUnknownEventType, ClassNotFound,
	ClassAPIUnavailable, ClassLookupFailed, ClassPluginFailed, ClassPublishRefused,
}

// Classes returns every error class, in a fixed order.
func Classes() []string { return slices.Clone(classes) }

// IsClass reports whether s is one of the error classes.
func IsClass(s string) bool { return slices.Contains(classes, s) }
