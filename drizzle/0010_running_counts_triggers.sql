-- The ledger's running counts (delivery_counts), kept by the database itself: after every statement that
-- inserts, updates or deletes deliveries, whichever code ran it, its changes are added in the same
-- transaction. A send-out's figures are then read from a few rows, exact in any snapshot, at 10 deliveries as
-- at a million. Each changed delivery counts -1 as it was and +1 as it is: under second -1 (all of the essay's
-- deliveries in that status) and, once finished, under the second of its last change (for the timeline;
-- 0 when it has no time).
--
-- Statement-level, with transition tables: one statement per statement on the ledger, not work per row, and
-- only one (this runs on the dispatcher's every hand-over; each statement more costs ~0.03 ms). Each session
-- adds to its own shard (backend pid modulo 8), so dispatchers in several processes don't queue on one row's
-- lock; a statement writes its rows in key order, so two sessions that share a shard take their locks in the
-- same order and can't deadlock. The three branches differ only in where the changed rows come from.
CREATE FUNCTION "delivery_counts_apply"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO delivery_counts AS t (essay_id, second, status, shard, count)
    SELECT c.essay_id, s.second, c.status, pg_backend_pid() % 8, sum(c.n)
    FROM (SELECT essay_id, status, updated_at, 1 AS n FROM new_rows) c,
         LATERAL (VALUES (-1), (CASE WHEN c.status IN ('sent', 'skipped', 'failed', 'unknown')
                                     THEN coalesce(ceil(extract(epoch FROM c.updated_at))::bigint, 0) END)) s(second)
    WHERE s.second IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(c.n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (essay_id, second, status, shard) DO UPDATE SET count = t.count + excluded.count;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO delivery_counts AS t (essay_id, second, status, shard, count)
    SELECT c.essay_id, s.second, c.status, pg_backend_pid() % 8, sum(c.n)
    FROM (SELECT essay_id, status, updated_at, -1 AS n FROM old_rows) c,
         LATERAL (VALUES (-1), (CASE WHEN c.status IN ('sent', 'skipped', 'failed', 'unknown')
                                     THEN coalesce(ceil(extract(epoch FROM c.updated_at))::bigint, 0) END)) s(second)
    WHERE s.second IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(c.n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (essay_id, second, status, shard) DO UPDATE SET count = t.count + excluded.count;
  ELSE
    INSERT INTO delivery_counts AS t (essay_id, second, status, shard, count)
    SELECT c.essay_id, s.second, c.status, pg_backend_pid() % 8, sum(c.n)
    FROM (SELECT essay_id, status, updated_at, 1 AS n FROM new_rows
          UNION ALL
          SELECT essay_id, status, updated_at, -1 FROM old_rows) c,
         LATERAL (VALUES (-1), (CASE WHEN c.status IN ('sent', 'skipped', 'failed', 'unknown')
                                     THEN coalesce(ceil(extract(epoch FROM c.updated_at))::bigint, 0) END)) s(second)
    WHERE s.second IS NOT NULL GROUP BY 1, 2, 3 HAVING sum(c.n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (essay_id, second, status, shard) DO UPDATE SET count = t.count + excluded.count;
  END IF;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "deliveries_counted_insert" AFTER INSERT ON "deliveries"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "delivery_counts_apply"();
--> statement-breakpoint
CREATE TRIGGER "deliveries_counted_update" AFTER UPDATE ON "deliveries"
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "delivery_counts_apply"();
--> statement-breakpoint
CREATE TRIGGER "deliveries_counted_delete" AFTER DELETE ON "deliveries"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "delivery_counts_apply"();
--> statement-breakpoint
CREATE FUNCTION "delivery_counts_clear"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM delivery_counts;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "deliveries_counted_truncate" AFTER TRUNCATE ON "deliveries"
  FOR EACH STATEMENT EXECUTE FUNCTION "delivery_counts_clear"();
--> statement-breakpoint
-- The ledger as it stands. Creating the triggers locked deliveries against writes until this migration
-- commits, so nothing changes between this count and the first change the triggers add.
INSERT INTO "delivery_counts" (essay_id, second, status, shard, count)
SELECT d.essay_id, s.second, d.status, 0, count(*)
FROM deliveries d,
     LATERAL (VALUES (-1), (CASE WHEN d.status IN ('sent', 'skipped', 'failed', 'unknown')
                                 THEN coalesce(ceil(extract(epoch FROM d.updated_at))::bigint, 0) END)) s(second)
WHERE s.second IS NOT NULL
GROUP BY 1, 2, 3;
--> statement-breakpoint
-- The list's running counts (subscriber_counts by status, subscriber_days by UTC day), kept by the database
-- as the ledger's are (above), though in two statements a firing (the list changes far less often than the
-- ledger): after every statement that inserts, updates or deletes subscribers, its changes are added in the
-- same transaction, to this session's shard, in key order. The overview reads a few hundred rows at most,
-- whatever the size of the list.
CREATE TYPE "subscriber_change" AS ("status" "subscriber_status", "subscribed" date, "confirmed" date, "unsubscribed" date, "bounced" date, "n" bigint);
--> statement-breakpoint
CREATE FUNCTION "subscriber_counts_apply"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  my_shard smallint := pg_backend_pid() % 8;
  changes subscriber_change[];
BEGIN
  -- The statement's changes, by status and the UTC days of the row's times: +1 as it is now, -1 as it was.
  IF TG_OP = 'INSERT' THEN
    changes := ARRAY(
      SELECT ROW(status, subscribed, confirmed, unsubscribed, bounced, count(*))::subscriber_change
      FROM new_rows, LATERAL (SELECT (created_at AT TIME ZONE 'UTC')::date AS subscribed,
                                     (confirmed_at AT TIME ZONE 'UTC')::date AS confirmed,
                                     (unsubscribed_at AT TIME ZONE 'UTC')::date AS unsubscribed,
                                     (bounced_at AT TIME ZONE 'UTC')::date AS bounced) d
      GROUP BY status, subscribed, confirmed, unsubscribed, bounced);
  ELSIF TG_OP = 'DELETE' THEN
    changes := ARRAY(
      SELECT ROW(status, subscribed, confirmed, unsubscribed, bounced, -count(*))::subscriber_change
      FROM old_rows, LATERAL (SELECT (created_at AT TIME ZONE 'UTC')::date AS subscribed,
                                     (confirmed_at AT TIME ZONE 'UTC')::date AS confirmed,
                                     (unsubscribed_at AT TIME ZONE 'UTC')::date AS unsubscribed,
                                     (bounced_at AT TIME ZONE 'UTC')::date AS bounced) d
      GROUP BY status, subscribed, confirmed, unsubscribed, bounced);
  ELSE
    changes := ARRAY(
      SELECT ROW(status, subscribed, confirmed, unsubscribed, bounced, sum(n))::subscriber_change
      FROM (SELECT status, created_at, confirmed_at, unsubscribed_at, bounced_at, 1 AS n FROM new_rows
            UNION ALL
            SELECT status, created_at, confirmed_at, unsubscribed_at, bounced_at, -1 FROM old_rows) c,
           LATERAL (SELECT (created_at AT TIME ZONE 'UTC')::date AS subscribed,
                           (confirmed_at AT TIME ZONE 'UTC')::date AS confirmed,
                           (unsubscribed_at AT TIME ZONE 'UTC')::date AS unsubscribed,
                           (bounced_at AT TIME ZONE 'UTC')::date AS bounced) d
      GROUP BY status, subscribed, confirmed, unsubscribed, bounced HAVING sum(n) <> 0);
  END IF;
  IF cardinality(changes) = 0 THEN
    RETURN NULL;
  END IF;
  INSERT INTO subscriber_counts AS t (status, shard, count)
  SELECT c.status, my_shard, sum(c.n) FROM unnest(changes) c
  GROUP BY 1 HAVING sum(c.n) <> 0 ORDER BY 1
  ON CONFLICT (status, shard) DO UPDATE SET count = t.count + excluded.count;
  INSERT INTO subscriber_days AS t (day, kind, shard, count)
  SELECT k.day, k.kind, my_shard, sum(c.n)
  FROM unnest(changes) c,
       LATERAL (VALUES (c.subscribed, 'subscribed'), (c.confirmed, 'confirmed'),
                       (c.unsubscribed, 'unsubscribed'), (c.bounced, 'bounced')) k(day, kind)
  WHERE k.day IS NOT NULL
  GROUP BY 1, 2 HAVING sum(c.n) <> 0 ORDER BY 1, 2
  ON CONFLICT (day, kind, shard) DO UPDATE SET count = t.count + excluded.count;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "subscribers_counted_insert" AFTER INSERT ON "subscribers"
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "subscriber_counts_apply"();
--> statement-breakpoint
CREATE TRIGGER "subscribers_counted_update" AFTER UPDATE ON "subscribers"
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "subscriber_counts_apply"();
--> statement-breakpoint
CREATE TRIGGER "subscribers_counted_delete" AFTER DELETE ON "subscribers"
  REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "subscriber_counts_apply"();
--> statement-breakpoint
CREATE FUNCTION "subscriber_counts_clear"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM subscriber_counts;
  DELETE FROM subscriber_days;
  RETURN NULL;
END $$;
--> statement-breakpoint
CREATE TRIGGER "subscribers_counted_truncate" AFTER TRUNCATE ON "subscribers"
  FOR EACH STATEMENT EXECUTE FUNCTION "subscriber_counts_clear"();
--> statement-breakpoint
-- The list as it stands (the triggers lock subscribers against writes until this migration commits).
INSERT INTO "subscriber_counts" (status, shard, count)
SELECT status, 0, count(*) FROM subscribers GROUP BY 1;
--> statement-breakpoint
INSERT INTO "subscriber_days" (day, kind, shard, count)
SELECT k.day, k.kind, 0, count(*)
FROM subscribers s,
     LATERAL (VALUES ((s.created_at AT TIME ZONE 'UTC')::date, 'subscribed'),
                     ((s.confirmed_at AT TIME ZONE 'UTC')::date, 'confirmed'),
                     ((s.unsubscribed_at AT TIME ZONE 'UTC')::date, 'unsubscribed'),
                     ((s.bounced_at AT TIME ZONE 'UTC')::date, 'bounced')) k(day, kind)
WHERE k.day IS NOT NULL
GROUP BY 1, 2;
