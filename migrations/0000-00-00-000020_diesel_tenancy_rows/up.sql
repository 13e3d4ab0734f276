-- Row mode: a tenant is either a schema tenant (its own schema) or a row tenant (its rows
-- in the shared row schema's tables, kept apart by row-level security keyed on the
-- `diesel_tenancy.tenant` setting, which holds the tenant's registry id).
ALTER TABLE public.tenants
    ADD COLUMN mode TEXT NOT NULL DEFAULT 'schema' CHECK (mode IN ('schema', 'rows'));
