CREATE UNIQUE INDEX tenants_name_lower_key ON public.tenants (lower(name));
DROP INDEX public.tenants_name_key_key;
ALTER TABLE public.tenants ALTER COLUMN name_key DROP NOT NULL;
