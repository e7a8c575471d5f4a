-- Workspaces (tenants): each owns the connections whose "workspace" names it, and can be
-- paused, which stops the scheduler from starting any of them until it is resumed.
CREATE TABLE "workspaces" (
    "id"         BIGSERIAL PRIMARY KEY,  -- store-assigned id
    "name"       TEXT NOT NULL UNIQUE,   -- unique name, as connections.workspace holds it
    "status"     TEXT NOT NULL,          -- active | paused
    "created_at" TIMESTAMPTZ NOT NULL,   -- when it was created
    "updated_at" TIMESTAMPTZ NOT NULL    -- when it last changed
);

-- The workspaces existing connections already name, active, created with their first
-- connection.
INSERT INTO "workspaces" ("name", "status", "created_at", "updated_at")
SELECT "workspace", 'active', MIN("created_at"), MIN("created_at")
FROM "connections" GROUP BY "workspace" ORDER BY MIN("id");
