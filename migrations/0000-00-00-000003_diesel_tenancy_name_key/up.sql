-- The key tenant names are compared by, computed by the crate (diesel_tenancy::tenant_name_key)
-- and not by SQL lower(): PostgreSQL's lower() and Rust's to_lowercase() disagree on some
-- letters (Greek final sigma), so a unique index on lower(name) and a cache keyed in Rust
-- could disagree about which tenant a name means. The crate fills the column for existing
-- rows right after this migration (SyncRouter::migrate_shared); the next migration makes
-- it NOT NULL and unique.
ALTER TABLE public.tenants ADD COLUMN name_key TEXT;
