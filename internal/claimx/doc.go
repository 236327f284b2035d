// Package claimx holds ClaimX's event and entity types and the typed ClaimX
// API over a named connection's HTTP client (internal/httpconn).
//
// No public ClaimX documentation exists; the simulator in internal/sim is the
// reference. What is known:
//
//   - Events on claimx.events are JSON objects decoded by ParseEvent into an
//     Event. Task events (CUSTOM_TASK_*) carry task_assignment_id.
//   - GET /customTasks/assignment/{assignmentId}?full=true returns one task
//     assignment (an instance of a task template): assignment_id, task_id
//     (the task template id), task_name,
//     project_id, status, previous_status, assigned_to_user_id,
//     assigned_by_user_id, created_at, updated_at, completed_at, due_date,
//     form_response and more. Client.TaskAssignment fetches it.
//   - GET /export/project/{projectId} returns the project with its contacts,
//     files and task summaries. Client.Project fetches it.
//   - GET /api/v1/tasks/{task_id} (SPEC.md's lookup endpoint) is called with
//     task_id = the template id, so it returns the task TEMPLATE: id, name,
//     version, updated_at, form sections and fields. It changes rarely, which
//     is why a TTL cache in front of it is safe. Client.TaskTemplate fetches it.
//   - GET /api/v1/projects/{project_id} returns the project summary.
//     Client.ProjectSummary fetches it.
//
// Rows are kept whole: ClaimX adds fields over time, so a Row is a map that
// never drops what it does not know, with typed accessors for the fields
// kpipe uses. Integers survive exactly (ids are int64, never float64). A
// RawRow is the same row kept as its JSON text, with the same accessors:
// what a cache of many rows holds (Client.TaskAssignmentRaw, ProjectRaw).
//
// The Client names ClaimX's routes and returns Rows; everything HTTP
// (auth, timeouts, retries, Retry-After, concurrency and rate limits) is the
// embedded *httpconn.Client's, and its errors are *httpconn.Error values that
// never contain the token.
//
//	c, err := claimx.NewClient(conn, httpconn.WithMetrics(m), httpconn.WithLogger(log))
//	row, err := c.TaskAssignment(ctx, 1000042)
//	if httpconn.IsNotFound(err) { ... }
//	status, _ := row.String("status")
package claimx
