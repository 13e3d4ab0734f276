ALTER TABLE public.tenants DROP COLUMN mode;
