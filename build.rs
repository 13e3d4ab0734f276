fn main() {
    for dir in ["migrations", "migrations_tenant", "tests/fixtures"] {
        println!("cargo:rerun-if-changed={dir}");
    }
}
