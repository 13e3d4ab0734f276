fn main() {
    // The tenant migrations are the library's `migrations_tenant/`, embedded here too.
    println!("cargo:rerun-if-changed=../../migrations_tenant");
}
