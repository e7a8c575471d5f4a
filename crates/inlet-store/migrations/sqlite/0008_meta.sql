-- Facts about the database itself, by name: the credentials key check value (a known
-- string sealed with the key the credentials are sealed with) and the `inlet demo` mark.
CREATE TABLE "inlet_meta" (
    "name" TEXT PRIMARY KEY,
    "value" TEXT NOT NULL
);
