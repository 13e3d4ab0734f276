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
        name_key -> Text,
        mode -> Text,
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

diesel::table! {
    public.tenant_spares (schema_name) {
        schema_name -> Varchar,
        created_at -> Timestamptz,
    }
}
