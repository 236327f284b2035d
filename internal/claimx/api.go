package claimx

import (
	"context"
	"net/url"
	"strconv"
)

// TaskAssignment fetches one task assignment with
// GET /customTasks/assignment/{assignmentID}?full=true.
func (c *Client) TaskAssignment(ctx context.Context, assignmentID int64) (Row, error) {
	return c.getRow(ctx, "/customTasks/assignment/"+strconv.FormatInt(assignmentID, 10), "full=true")
}

// Project fetches the full project export with GET /export/project/{projectID}.
func (c *Client) Project(ctx context.Context, projectID string) (Row, error) {
	return c.getRow(ctx, "/export/project/"+url.PathEscape(projectID), "")
}

// TaskTemplate fetches a task template with GET /api/v1/tasks/{taskID}
// (SPEC.md's lookup endpoint; taskID is the template id such as 32513).
func (c *Client) TaskTemplate(ctx context.Context, taskID int64) (Row, error) {
	return c.getRow(ctx, "/api/v1/tasks/"+strconv.FormatInt(taskID, 10), "")
}

// ProjectSummary fetches the project summary with GET /api/v1/projects/{projectID}.
func (c *Client) ProjectSummary(ctx context.Context, projectID string) (Row, error) {
	return c.getRow(ctx, "/api/v1/projects/"+url.PathEscape(projectID), "")
}
