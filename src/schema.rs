//! Diesel table declarations for the tenant registry.
//!
//! They are schema-qualified (`public.tenants`), so they resolve the same in any scope.
#![allow(missing_docs)]

diesel::table! {
    public.tenants (id) {
        id -> BigInt,
        name -> Varchar,
        schema_name -> Varchar,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    public.domains (id) {
        id -> BigInt,
        domain -> Varchar,
        tenant_id -> BigInt,
        is_primary -> Bool,
    }
}

diesel::joinable!(domains -> tenants (tenant_id));
diesel::allow_tables_to_appear_in_same_query!(tenants, domains);

diesel::define_sql_function! {
    /// SQL `lower(text)`.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}

diesel::table! {
    public.tenant_spares (schema_name) {
        schema_name -> Varchar,
        created_at -> Timestamptz,
    }
}
