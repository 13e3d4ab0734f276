-- Undoes diesel_tenancy_row_table('hotels'), in the row schema only (elsewhere it did
-- nothing). Dropping `tenant_id` drops the primary key that led with it.
DO $$
BEGIN
    IF public.diesel_tenancy_is_row_schema() THEN
        DROP POLICY IF EXISTS diesel_tenancy_tenant ON hotels;
        DROP POLICY IF EXISTS diesel_tenancy_owner ON hotels;
        ALTER TABLE hotels NO FORCE ROW LEVEL SECURITY, DISABLE ROW LEVEL SECURITY;
        ALTER TABLE hotels DROP COLUMN tenant_id;
        ALTER TABLE hotels ADD PRIMARY KEY (id);
    END IF;
END
$$;
