DROP TABLE public.tenant_spares;
