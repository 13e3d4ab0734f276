-- Spare schemas: created and migrated ahead of time, renamed to a new tenant's schema
-- when it is created, so that creation costs a rename instead of a CREATE TABLE per table.
CREATE TABLE public.tenant_spares (
    schema_name VARCHAR(63) PRIMARY KEY
                CHECK (schema_name ~ '^[a-z_][a-z0-9_]{0,62}$'),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
