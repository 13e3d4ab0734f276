ALTER TABLE public.tenants ALTER COLUMN name_key TYPE TEXT COLLATE "default";
