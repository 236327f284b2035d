-- Queries over the itel_cabinet_task_tracking Delta table (DuckDB dialect).
--
-- Run them all, in order, with:
--   kpipe query --file scripts/delta_tables/itel_cabinet_queries.sql
-- kpipe exposes the table's current snapshot as a view named
-- itel_cabinet_task_tracking, with timestamps as TIMESTAMP WITH TIME ZONE in
-- UTC and year/month/day from the table's partition values. DATEDIFF(end,
-- start) with two arguments is Spark's: whole days between the UTC dates.

-- Task lifecycle (SPEC.md "Sample Query - Task Lifecycle", as written)
SELECT
  task_id,
  assignment_id,
  task_status,
  event_timestamp,
  task_created_at,
  task_completed_at,
  DATEDIFF(task_completed_at, task_created_at) as days_to_complete
FROM itel_cabinet_task_tracking
WHERE task_id = 32513
ORDER BY event_timestamp ASC;

-- Status transitions (SPEC.md "Sample Query - Status Transitions", as written)
SELECT
  task_id,
  task_status,
  COUNT(*) as status_count,
  MIN(event_timestamp) as first_seen,
  MAX(event_timestamp) as last_seen
FROM itel_cabinet_task_tracking
WHERE year = 2026 AND month = 1
GROUP BY task_id, task_status
ORDER BY task_id, first_seen;

-- Time in each status per assignment: a status lasts from its event to the
-- assignment's next event (LEAD over event_timestamp). seconds_in_status
-- sums the finished stays; is_current marks the status the assignment is in
-- now (its stay has no end yet and is not counted).
WITH stays AS (
  SELECT
    assignment_id,
    task_status,
    event_timestamp,
    LEAD(event_timestamp) OVER (
      PARTITION BY assignment_id ORDER BY event_timestamp, event_id
    ) AS left_at
  FROM itel_cabinet_task_tracking
  WHERE task_id = 32513
)
SELECT
  assignment_id,
  task_status,
  COUNT(*) AS times_entered,
  COALESCE(SUM(epoch(left_at - event_timestamp)), 0) AS seconds_in_status,
  BOOL_OR(left_at IS NULL) AS is_current
FROM stays
GROUP BY assignment_id, task_status
ORDER BY assignment_id, MIN(event_timestamp), task_status;

-- Stuck tasks: assignments whose latest status is not final (completed,
-- cancelled) and has not changed for over N days. N = 3 here: change the 3
-- of INTERVAL 3 DAY below to use another threshold.
WITH latest AS (
  SELECT
    assignment_id,
    task_status,
    event_timestamp,
    ROW_NUMBER() OVER (
      PARTITION BY assignment_id ORDER BY event_timestamp DESC, event_id DESC
    ) AS rn
  FROM itel_cabinet_task_tracking
  WHERE task_id = 32513
)
SELECT
  assignment_id,
  task_status,
  event_timestamp AS in_status_since,
  DATEDIFF(now(), event_timestamp) AS days_in_status
FROM latest
WHERE rn = 1
  AND task_status NOT IN ('completed', 'cancelled')
  AND event_timestamp < now() - INTERVAL 3 DAY  -- N = 3 days
ORDER BY in_status_since, assignment_id;

-- Daily event counts by event type (UTC days, from the partition columns)
SELECT
  make_date(year, month, day) AS event_date,
  event_type,
  COUNT(*) AS events
FROM itel_cabinet_task_tracking
GROUP BY ALL
ORDER BY event_date, event_type;

-- Rows lacking enrichment: the ClaimX lookup failed (or the API was down),
-- so claimx_task_full is NULL; the worker's error topic says why.
SELECT
  event_id,
  event_type,
  task_id,
  assignment_id,
  task_status,
  event_timestamp
FROM itel_cabinet_task_tracking
WHERE claimx_task_full IS NULL
ORDER BY event_timestamp, event_id;
