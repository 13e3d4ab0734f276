//! The admin API (replaces the seed's Django admin): tenants and domains.
//!
//! Mounted only when `HOTEL_ADMIN_TOKEN` is set, so without it every route is a 404.
//! Every request needs `Authorization: Bearer <token>`; otherwise 401 with a `detail`.

use diesel_tenancy::diesel::PgConnection;
use diesel_tenancy::rocket::{PublicDb, Tenancy};
use diesel_tenancy::{
    validate_tenant_name, DomainName, Error, NewTenant, SchemaName, Tenant, TenantMode,
    TenantRegistry,
};
use rocket::fairing::AdHoc;
use rocket::http::Status;
use rocket::request::{FromRequest, Outcome};
use rocket::response::status::Created;
use rocket::serde::json::{json, Json, Value};
use rocket::{delete, get, post, routes, uri, Request, State};

use crate::body::JsonObject;
use crate::problem::Problem;
use crate::validate::{self, FieldErrors};

/// The configured bearer token.
struct AdminToken(String);

pub fn stage(token: Option<String>) -> AdHoc {
    AdHoc::on_ignite("Admin API", |rocket| async move {
        match token {
            Some(token) => rocket.manage(AdminToken(token)).mount(
                "/",
                routes![
                    create_tenant,
                    list_tenants,
                    get_tenant,
                    delete_tenant,
                    add_domain,
                    remove_domain
                ],
            ),
            None => {
                log::info!("admin API off: set HOTEL_ADMIN_TOKEN to turn it on");
                rocket
            }
        }
    })
}

/// A request that presented the admin token.
struct Admin;

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Admin {
    type Error = Problem;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Admin, Problem> {
        let Some(AdminToken(expected)) = req.rocket().state::<AdminToken>() else {
            return Outcome::Error((Status::NotFound, Problem::not_found()));
        };
        match authorize(req.headers().get_one("Authorization"), expected) {
            Ok(()) => Outcome::Success(Admin),
            Err(problem) => Outcome::Error((Status::Unauthorized, problem)),
        }
    }
}

/// Checks an `Authorization` header against the admin token (every face): 401 without
/// it or with another token.
pub fn authorize(header: Option<&str>, expected: &str) -> Result<(), Problem> {
    let presented = header.and_then(|v| {
        let (scheme, token) = v.trim().split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    match presented {
        None => Err(Problem::Unauthorized(
            "Authentication credentials were not provided.",
        )),
        Some(token) if validate::same_secret(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(Problem::Unauthorized("Invalid token.")),
    }
}

/// A tenant as the admin API shows it: with its domains, primary first.
pub fn described(conn: &mut PgConnection, tenant: Tenant) -> Result<Value, Problem> {
    let listed = TenantRegistry::with_domains(conn, tenant)?;
    Ok(json!(listed))
}

/// A registry miss is the resource's 404, not the tenant-resolution 400.
pub fn not_found_on_miss(e: Error) -> Problem {
    match e {
        Error::UnknownTenant { .. } | Error::UnknownDomain { .. } => Problem::not_found(),
        other => Problem::from(other),
    }
}

/// Reloads this process's registry cache after a domain change, so the change applies
/// to the next request here (other processes follow through NOTIFY). A failure only
/// delays that, so it is logged, not answered.
pub async fn refresh(tenancy: &Tenancy) {
    if let Err(e) = tenancy.refresh().await {
        log::warn!("registry cache refresh after a domain change: {e}");
    }
}

/// Runs blocking router work (schema DDL) off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    rocket::tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Problem::internal("admin task", &e))?
}

pub fn string_field<'a>(
    body: &'a serde_json::Map<String, Value>,
    field: &str,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<&'a str> {
    let message = match body.get(field) {
        None if required => validate::REQUIRED,
        None => return None,
        Some(Value::Null) if !required => return None,
        Some(Value::Null) => validate::NULL,
        Some(Value::String(s)) if s.trim().is_empty() => validate::BLANK,
        Some(Value::String(s)) => return Some(s),
        Some(_) => validate::NOT_A_STRING,
    };
    errors.insert(field.into(), vec![message.into()]);
    None
}

fn parse_new_tenant(body: Result<JsonObject, Problem>) -> Result<NewTenant, Problem> {
    let JsonObject(body) = body?;
    new_tenant(&body)
}

/// A new tenant from the admin API's JSON object (every face), or its field errors.
pub fn new_tenant(body: &serde_json::Map<String, Value>) -> Result<NewTenant, Problem> {
    let mut errors = FieldErrors::new();
    let name = string_field(body, "name", true, &mut errors);
    let schema = string_field(body, "schema_name", false, &mut errors);
    let mut domains = Vec::new();
    match body.get("domains") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str() {
                    Some(d) => domains.push(d),
                    None => errors
                        .entry("domains".into())
                        .or_default()
                        .push(validate::NOT_A_STRING.into()),
                }
            }
        }
        Some(_) => {
            errors.insert("domains".into(), vec!["Expected a list of items.".into()]);
        }
    }
    let mut new = check_new_tenant(name, schema, &domains, &mut errors);
    if let Some(mode) = string_field(body, "mode", false, &mut errors) {
        match TenantMode::parse(mode) {
            Some(mode) => new.mode = Some(mode),
            None => {
                errors.insert(
                    "mode".into(),
                    vec![format!("\"{mode}\" is not a valid choice: schema or rows.")],
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(Problem::Fields(errors));
    }
    Ok(new)
}

/// Checks a new tenant's fields, whether they came as JSON or from the admin panel's
/// form: a message per bad field goes to `errors` (`name`, `schema_name`, `domains`).
/// `None` is a field that is absent or was already reported; the first domain becomes
/// the primary one.
pub fn check_new_tenant(
    name: Option<&str>,
    schema_name: Option<&str>,
    domains: &[&str],
    errors: &mut FieldErrors,
) -> NewTenant {
    let name = name.and_then(|n| {
        validate_tenant_name(n)
            .map_err(|e| errors.insert("name".into(), vec![e.to_string()]))
            .ok()
    });
    let schema_name = schema_name.and_then(|s| {
        SchemaName::new(s)
            .map_err(|e| errors.insert("schema_name".into(), vec![e.to_string()]))
            .ok()
    });
    let mut valid = Vec::new();
    for domain in domains {
        match DomainName::new(domain) {
            Ok(d) => valid.push(d),
            Err(e) => errors
                .entry("domains".into())
                .or_default()
                .push(e.to_string()),
        }
    }
    NewTenant {
        name: name.unwrap_or_default().to_owned(),
        schema_name,
        domains: valid,
        mode: None,
    }
}

#[post("/tenants", data = "<body>")]
async fn create_tenant(
    admin: Result<Admin, Problem>,
    body: Result<JsonObject, Problem>,
    tenancy: &State<Tenancy>,
) -> Result<Created<Json<Value>>, Problem> {
    admin?;
    let new = parse_new_tenant(body)?;
    if new.mode == Some(TenantMode::Rows) && !tenancy.pool()?.has_row_tenants() {
        return Err(refuse_rows());
    }
    // Through `Tenancy`, so the new tenant resolves here as soon as this returns.
    let tenant = tenancy.create_tenant(new).await?;
    let pool = tenancy.pool()?;
    let value = blocking(move || pool.with_public(|conn| described(conn, tenant))).await?;
    let location = uri!(get_tenant(value["name"].as_str().unwrap_or_default())).to_string();
    Ok(Created::new(location).body(Json(value)))
}

#[get("/tenants")]
async fn list_tenants(admin: Result<Admin, Problem>, db: PublicDb) -> Result<Json<Value>, Problem> {
    admin?;
    db.run(|conn| Ok(Json(json!(TenantRegistry::list_with_domains(conn)?))))
        .await
}

#[get("/tenants/<name>")]
async fn get_tenant(
    admin: Result<Admin, Problem>,
    name: &str,
    db: PublicDb,
) -> Result<Json<Value>, Problem> {
    admin?;
    let name = name.to_owned();
    db.run(move |conn| {
        let tenant = TenantRegistry::find_by_name(conn, &name)?.ok_or_else(Problem::not_found)?;
        described(conn, tenant).map(Json)
    })
    .await
}

#[delete("/tenants/<name>?<drop_schema>")]
async fn delete_tenant(
    admin: Result<Admin, Problem>,
    name: &str,
    drop_schema: Option<&str>,
    tenancy: &State<Tenancy>,
) -> Result<Status, Problem> {
    admin?;
    let drop_schema = drop_schema_flag(drop_schema)?;
    tenancy
        .delete_tenant(name.to_owned(), drop_schema)
        .await
        .map_err(not_found_on_miss)?;
    Ok(Status::NoContent)
}

/// The `drop_schema` query parameter of a tenant deletion (every face).
pub fn drop_schema_flag(value: Option<&str>) -> Result<bool, Problem> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no" | "off") => Ok(false),
        Some("true" | "1" | "yes" | "on" | "") => Ok(true),
        Some(_) => Err(Problem::field("drop_schema", "Must be a valid boolean.")),
    }
}

/// A new domain's body (every face): the domain and whether it is the primary one.
pub fn new_domain(body: &serde_json::Map<String, Value>) -> Result<(DomainName, bool), Problem> {
    let mut errors = FieldErrors::new();
    let domain = string_field(body, "domain", true, &mut errors).and_then(|d| {
        DomainName::new(d)
            .map_err(|e| errors.insert("domain".into(), vec![e.to_string()]))
            .ok()
    });
    let primary = match body.get("is_primary") {
        None | Some(Value::Null) => false,
        Some(&Value::Bool(b)) => b,
        Some(_) => {
            errors.insert("is_primary".into(), vec!["Must be a valid boolean.".into()]);
            false
        }
    };
    match domain.filter(|_| errors.is_empty()) {
        Some(domain) => Ok((domain, primary)),
        None => Err(Problem::Fields(errors)),
    }
}

/// Adds `domain` to tenant `name` in the registry; the admin API's answer (every face).
pub fn add_domain_row(
    conn: &mut PgConnection,
    name: &str,
    domain: &DomainName,
    primary: bool,
) -> Result<Value, Problem> {
    let tenant = TenantRegistry::find_by_name(conn, name)?.ok_or_else(Problem::not_found)?;
    let row = TenantRegistry::add_domain(conn, &tenant.name, domain, primary)
        .map_err(not_found_on_miss)?;
    Ok(json!({
        "domain": row.domain,
        "tenant": tenant.name,
        "is_primary": row.is_primary,
    }))
}

/// The message of a row-tenant creation on a service without row tenants.
pub fn refuse_rows() -> Problem {
    let mut errors = FieldErrors::new();
    errors.insert(
        "mode".into(),
        vec!["This service does not serve row tenants (HOTEL_TENANT_MODE=rows).".into()],
    );
    Problem::Fields(errors)
}

#[post("/tenants/<name>/domains", data = "<body>")]
async fn add_domain(
    admin: Result<Admin, Problem>,
    name: &str,
    body: Result<JsonObject, Problem>,
    db: PublicDb,
    tenancy: &State<Tenancy>,
) -> Result<Created<Json<Value>>, Problem> {
    admin?;
    let JsonObject(body) = body?;
    let (domain, primary) = new_domain(&body)?;
    let name = name.to_owned();
    let value = db
        .run(move |conn| add_domain_row(conn, &name, &domain, primary))
        .await?;
    refresh(tenancy).await;
    let location = uri!(remove_domain(value["domain"].as_str().unwrap_or_default())).to_string();
    Ok(Created::new(location).body(Json(value)))
}

#[delete("/domains/<domain>")]
async fn remove_domain(
    admin: Result<Admin, Problem>,
    domain: &str,
    db: PublicDb,
    tenancy: &State<Tenancy>,
) -> Result<Status, Problem> {
    admin?;
    let domain = DomainName::new(domain).map_err(|_| Problem::not_found())?;
    db.run(move |conn| TenantRegistry::remove_domain(conn, &domain).map_err(not_found_on_miss))
        .await?;
    refresh(tenancy).await;
    Ok(Status::NoContent)
}
