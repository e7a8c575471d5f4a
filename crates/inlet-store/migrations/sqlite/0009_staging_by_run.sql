-- Staged reconcile ids are keyed by run: the token is `<connection>:<stream>:<run>`
-- (issue 18, item 20), so two runs of one connection never drop each other's ids, and
-- the ids a crashed run staged are dropped when its run is closed. Ids staged by older
-- versions under `<connection>:<stream>` belong to no run and would never be dropped:
-- they are worthless (a listing is redone), so they go now.
DELETE FROM "reconcile_staging";
