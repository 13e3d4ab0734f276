-- Row mode: a tenant is either a schema tenant (its own schema) or a row tenant (its rows
-- in the shared row schema's tables, kept apart by row-level security keyed on the
-- `diesel_tenancy.tenant` setting, which holds the tenant's registry id).
ALTER TABLE public.tenants
    ADD COLUMN mode TEXT NOT NULL DEFAULT 'schema' CHECK (mode IN ('schema', 'rows'));

-- Whether the current schema (the first on the path: where a tenant migration creates
-- its tables) is a row schema, i.e. holds the sentinel table `__diesel_tenancy_rows`.
-- A tenant migration's down.sql uses it to undo row-only changes in the row schema only.
CREATE OR REPLACE FUNCTION public.diesel_tenancy_is_row_schema() RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (
        SELECT 1
        FROM pg_catalog.pg_class c
        JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = pg_catalog.current_schema()
          AND c.relname = '__diesel_tenancy_rows'
          AND c.relkind IN ('r', 'p'));
END
$$;

-- Makes table `t` serve row tenants, when it is in a row schema (a schema holding the
-- sentinel table `__diesel_tenancy_rows`); anywhere else (a schema tenant's schema) it
-- does nothing, so one tenant migration serves both modes:
--     CREATE TABLE hotels (...);
--     SELECT public.diesel_tenancy_row_table('hotels');
-- In a row schema it:
-- * adds `tenant_id bigint NOT NULL DEFAULT <the tenant setting>` (or gives a declared
--   bigint `tenant_id` that default and NOT NULL);
-- * makes the primary key and every unique constraint lead with `tenant_id` (refused
--   when a foreign key depends on one: call it before adding foreign keys);
-- * turns row-level security on and forces it (the owner is bound too);
-- * (re)creates the policies `diesel_tenancy_tenant` (everyone: the rows of the tenant
--   whose id is in `diesel_tenancy.tenant`, also for what is written) and
--   `diesel_tenancy_owner` (the table's owner, who runs migrations and work across all
--   row tenants: every row).
-- Calling it again changes nothing.
CREATE OR REPLACE FUNCTION public.diesel_tenancy_row_table(t pg_catalog.regclass) RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path TO pg_catalog, pg_temp
AS $$
DECLARE
    tenant_expr constant pg_catalog.text :=
        'NULLIF(pg_catalog.current_setting(''diesel_tenancy.tenant'', true), '''')::pg_catalog.int8';
    rel record;
    col record;
    con record;
    idx record;
    tenant_attnum pg_catalog.int2;
    def pg_catalog.text;
BEGIN
    SELECT c.oid, c.relname, c.relkind, n.nspname, c.relowner
      INTO rel
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = t;
    IF NOT EXISTS (
        SELECT 1 FROM pg_catalog.pg_class s
         WHERE s.relnamespace = (SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = t)
           AND s.relname = '__diesel_tenancy_rows' AND s.relkind IN ('r', 'p')) THEN
        RETURN;
    END IF;
    IF rel.relkind NOT IN ('r', 'p') THEN
        RAISE EXCEPTION 'diesel_tenancy_row_table: %.% is not a table',
            pg_catalog.quote_ident(rel.nspname), pg_catalog.quote_ident(rel.relname);
    END IF;

    -- The tenant column.
    SELECT a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type_name
      INTO col
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = t AND a.attname = 'tenant_id' AND NOT a.attisdropped;
    IF NOT FOUND THEN
        EXECUTE pg_catalog.format(
            'ALTER TABLE %s ADD COLUMN tenant_id pg_catalog.int8 NOT NULL DEFAULT %s',
            t, tenant_expr);
    ELSIF col.type_name <> 'bigint' THEN
        RAISE EXCEPTION 'diesel_tenancy_row_table: %.%.tenant_id is %, not bigint',
            pg_catalog.quote_ident(rel.nspname), pg_catalog.quote_ident(rel.relname), col.type_name
            USING HINT = 'declare tenant_id BIGINT, or leave it out and let this function add it';
    ELSE
        EXECUTE pg_catalog.format(
            'ALTER TABLE %s ALTER COLUMN tenant_id SET DEFAULT %s, ALTER COLUMN tenant_id SET NOT NULL',
            t, tenant_expr);
    END IF;
    SELECT a.attnum INTO tenant_attnum
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = t AND a.attname = 'tenant_id' AND NOT a.attisdropped;

    -- The primary key and unique constraints lead with it.
    FOR con IN
        SELECT c.oid, c.conname, c.conkey, c.conindid
          FROM pg_catalog.pg_constraint c
         WHERE c.conrelid = t AND c.contype IN ('p', 'u') AND c.conkey[1] <> tenant_attnum
         ORDER BY c.contype, c.conname
    LOOP
        IF tenant_attnum = ANY (con.conkey) THEN
            RAISE EXCEPTION 'diesel_tenancy_row_table: constraint % of %.% has tenant_id, but not first',
                pg_catalog.quote_ident(con.conname), pg_catalog.quote_ident(rel.nspname),
                pg_catalog.quote_ident(rel.relname)
                USING HINT = 'declare it with tenant_id as its first column';
        END IF;
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_constraint f
                    WHERE f.contype = 'f' AND f.conindid = con.conindid) THEN
            RAISE EXCEPTION 'diesel_tenancy_row_table: a foreign key depends on constraint % of %.%',
                pg_catalog.quote_ident(con.conname), pg_catalog.quote_ident(rel.nspname),
                pg_catalog.quote_ident(rel.relname)
                USING HINT = 'call public.diesel_tenancy_row_table on a table before adding foreign keys that reference it, and make those keys lead with tenant_id';
        END IF;
        -- `PRIMARY KEY (id) ...` / `UNIQUE [NULLS NOT DISTINCT] (a, b) ...`: the first
        -- parenthesis opens the key's column list.
        def := pg_catalog.regexp_replace(
            pg_catalog.pg_get_constraintdef(con.oid), '\(', '(tenant_id, ');
        EXECUTE pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s',
            t, con.conname, con.conname, def);
    END LOOP;

    -- Unique indexes made without a constraint cannot be rewritten the same way.
    FOR idx IN
        SELECT i.indexrelid::pg_catalog.regclass AS name
          FROM pg_catalog.pg_index i
         WHERE i.indrelid = t AND i.indisunique AND i.indkey[0] <> tenant_attnum
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid
                            AND c.conrelid = t)
    LOOP
        RAISE EXCEPTION 'diesel_tenancy_row_table: unique index % of %.% does not lead with tenant_id',
            idx.name, pg_catalog.quote_ident(rel.nspname), pg_catalog.quote_ident(rel.relname)
            USING HINT = 'create it with tenant_id as its first column';
    END LOOP;

    -- Row-level security, also for the owner, and the two policies.
    EXECUTE pg_catalog.format(
        'ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY', t);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                WHERE p.polrelid = t AND p.polname = 'diesel_tenancy_tenant') THEN
        EXECUTE pg_catalog.format('DROP POLICY diesel_tenancy_tenant ON %s', t);
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE POLICY diesel_tenancy_tenant ON %s AS PERMISSIVE FOR ALL TO PUBLIC '
        'USING (tenant_id OPERATOR(pg_catalog.=) %s) WITH CHECK (tenant_id OPERATOR(pg_catalog.=) %s)',
        t, tenant_expr, tenant_expr);
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                WHERE p.polrelid = t AND p.polname = 'diesel_tenancy_owner') THEN
        EXECUTE pg_catalog.format('DROP POLICY diesel_tenancy_owner ON %s', t);
    END IF;
    EXECUTE pg_catalog.format(
        'CREATE POLICY diesel_tenancy_owner ON %s AS PERMISSIVE FOR ALL TO %I '
        'USING (true) WITH CHECK (true)',
        t, pg_catalog.pg_get_userbyid(rel.relowner));
END
$$;
