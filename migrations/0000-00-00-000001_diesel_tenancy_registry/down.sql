DROP TABLE public.domains;
DROP TABLE public.tenants;
DROP FUNCTION public.diesel_tenancy_notify();
