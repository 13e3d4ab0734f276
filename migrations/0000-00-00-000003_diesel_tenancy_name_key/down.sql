ALTER TABLE public.tenants DROP COLUMN name_key;
