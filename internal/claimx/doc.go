// Package claimx holds ClaimX's event and entity types and the HTTP client
// for named connections.
//
// No public ClaimX documentation exists; the simulator in internal/sim is the
// reference. What is known:
//
//   - Events on claimx.events are JSON objects decoded by ParseEvent into an
//     Event. Task events (CUSTOM_TASK_*) carry task_assignment_id.
//   - GET /customTasks/assignment/{assignmentId}?full=true returns one task
//     assignment (an instance of a task template): assignment_id, task_id
//     (the template id, 32513 for the iTel Cabinet Repair Form), task_name,
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
// kpipe uses. Integers survive exactly (ids are int64, never float64).
//
// The Client is generic over named connections (config.Connection): base
// URL, bearer/basic/no auth, headers, per-attempt timeout, retries with
// exponential backoff and jitter on network errors, 5xx and 429 (Retry-After
// honoured, capped), a concurrency limit and an optional rate limit. Its
// errors are *HTTPError values that never contain the token.
//
//	c, err := claimx.NewClient(conn, claimx.WithMetrics(m), claimx.WithLogger(log))
//	row, err := c.TaskAssignment(ctx, 1000042)
//	status, _ := row.String("status")
//	if claimx.IsNotFound(err) { ... }
package claimx
