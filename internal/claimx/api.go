package claimx

import (
	"context"
	"net/url"
	"strconv"

	"kpipe/internal/config"
	"kpipe/internal/httpconn"
)

// Client is the typed ClaimX API over the HTTP client of a named connection:
// it names the routes and returns their bodies as Rows. Its errors are the
// connection's *httpconn.Error values (httpconn.IsRetryable,
// httpconn.IsNotFound). The embedded *httpconn.Client gives Name, Ping,
// Close, Get and GetJSON. It is safe for concurrent use.
type Client struct {
	*httpconn.Client
}

// NewClient builds the ClaimX API client of a named connection; see
// httpconn.New for the connection fields and options.
func NewClient(conn *config.Connection, opts ...httpconn.Option) (*Client, error) {
	c, err := httpconn.New(conn, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{Client: c}, nil
}

var fullQuery = url.Values{"full": {"true"}}

// TaskAssignment fetches one task assignment with
// GET /customTasks/assignment/{assignmentID}?full=true.
func (c *Client) TaskAssignment(ctx context.Context, assignmentID int64) (Row, error) {
	return c.row(ctx, "/customTasks/assignment/"+strconv.FormatInt(assignmentID, 10), fullQuery)
}

// Project fetches the full project export with GET /export/project/{projectID}.
func (c *Client) Project(ctx context.Context, projectID string) (Row, error) {
	return c.row(ctx, "/export/project/"+url.PathEscape(projectID), nil)
}

// TaskTemplate fetches a task template with GET /api/v1/tasks/{taskID}
// (SPEC.md's lookup endpoint; taskID is the task template id, the task_id
// of an assignment).
func (c *Client) TaskTemplate(ctx context.Context, taskID int64) (Row, error) {
	return c.row(ctx, "/api/v1/tasks/"+strconv.FormatInt(taskID, 10), nil)
}

// ProjectSummary fetches the project summary with GET /api/v1/projects/{projectID}.
func (c *Client) ProjectSummary(ctx context.Context, projectID string) (Row, error) {
	return c.row(ctx, "/api/v1/projects/"+url.PathEscape(projectID), nil)
}

// TaskAssignmentRaw is TaskAssignment keeping the row as its JSON text
// (RawRow), which costs a cache less than a Row's maps.
func (c *Client) TaskAssignmentRaw(ctx context.Context, assignmentID int64) (*RawRow, error) {
	return c.rawRow(ctx, "/customTasks/assignment/"+strconv.FormatInt(assignmentID, 10), fullQuery)
}

// ProjectRaw is Project keeping the row as its JSON text (RawRow).
func (c *Client) ProjectRaw(ctx context.Context, projectID string) (*RawRow, error) {
	return c.rawRow(ctx, "/export/project/"+url.PathEscape(projectID), nil)
}

func (c *Client) rawRow(ctx context.Context, path string, query url.Values) (*RawRow, error) {
	var out *RawRow
	err := c.GetParsed(ctx, path, query, func(b []byte) error {
		r, err := DecodeRawRow(b)
		out = r
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) row(ctx context.Context, path string, query url.Values) (Row, error) {
	m, err := c.GetJSON(ctx, path, query)
	if err != nil {
		return nil, err
	}
	return Row(m), nil
}
