-- Row tenants: in the row schema, `hotels` gets `tenant_id` (filled from the tenant
-- setting), a primary key that leads with it, forced row-level security and the tenant
-- and owner policies. In a schema tenant's schema this does nothing.
SELECT public.diesel_tenancy_row_table('hotels');
