-- One rule for tenant-name equality: the crate-computed key is what must be unique.
ALTER TABLE public.tenants ALTER COLUMN name_key SET NOT NULL;
CREATE UNIQUE INDEX tenants_name_key_key ON public.tenants (name_key);
DROP INDEX public.tenants_name_lower_key;
