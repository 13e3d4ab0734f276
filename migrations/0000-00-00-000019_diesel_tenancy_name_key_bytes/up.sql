-- Tenant-name keys are computed by the crate (diesel_tenancy::tenant_name_key) and compared
-- byte for byte: with the "C" collation the unique index and every comparison ignore the
-- database's collation provider and version.
ALTER TABLE public.tenants ALTER COLUMN name_key TYPE TEXT COLLATE "C";
