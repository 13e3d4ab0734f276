DROP FUNCTION IF EXISTS public.diesel_tenancy_row_table(pg_catalog.regclass);
DROP FUNCTION IF EXISTS public.diesel_tenancy_is_row_schema();
ALTER TABLE public.tenants DROP COLUMN mode;
