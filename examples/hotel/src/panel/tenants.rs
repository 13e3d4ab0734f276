//! Tenant pages: the list (the panel's home), creating, one tenant with its domains and
//! hotels, and deleting through a confirmation page.
//!
//! Tenants are addressed by schema name in URLs: it is unique and URL-safe, where a
//! tenant's display name may hold any character.

use std::collections::HashMap;

use diesel_tenancy::rocket::Tenancy;
use diesel_tenancy::{Error, SchemaName, Tenant, TenantPool, TenantRegistry, TenantWithDomains};
use rocket::form::FromForm;
use rocket::http::{CookieJar, Status};
use rocket::{get, post, Route, State};

use super::pages::{
    DomainRow, Errors, HotelRow, Layout, TenantDelete, TenantInput, TenantPage, TenantRow, Tenants,
};
use super::session::{self, AdminSession, CsrfForm, Flash, Posted, Sessions};
use super::{Html, PanelError, Reply, BASE};
use crate::admin::{self, blocking};
use crate::config::MediaRoot;
use crate::hotels::Rows;
use crate::model;
use crate::problem::Problem;
use crate::validate::{self, FieldErrors};

pub fn routes() -> Vec<Route> {
    rocket::routes![index, create, show, confirm_delete, delete]
}

/// The page of one tenant.
pub fn tenant_url(schema: &str) -> String {
    panel_uri!(show(schema))
}

pub fn pool(tenancy: &Tenancy) -> Result<TenantPool, PanelError> {
    Ok(tenancy.pool()?)
}

/// The registered tenant whose schema is `schema`, or a 404.
pub async fn find_tenant(tenancy: &Tenancy, schema: &str) -> Result<Tenant, PanelError> {
    let schema = SchemaName::new(schema).map_err(|_| PanelError::NotFound)?;
    let pool = pool(tenancy)?;
    blocking(move || pool.with_public(|c| Ok(TenantRegistry::find_by_schema(c, &schema)?)))
        .await?
        .ok_or(PanelError::NotFound)
}

/// A crate message as a sentence: "a tenant named `x` already exists" → "A tenant … exists."
pub fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !out.ends_with('.') {
        out.push('.');
    }
    out
}

/// Hotels per schema for `tenants`, in two queries; a schema that cannot be counted
/// (e.g. dropped by hand) is missing from the map, and the error is logged.
fn count_hotels(pool: &TenantPool, tenants: &[&Tenant]) -> HashMap<String, i64> {
    let schemas: Vec<SchemaName> = tenants.iter().map(|t| t.schema_name.clone()).collect();
    pool.with_public(|c| model::count_by_schema(c, &schemas).map_err(Problem::from))
        .map_err(|e| log::warn!("counting hotels: {e:?}"))
        .unwrap_or_default()
}

/// A tenant's row of the panel: its domains (primary first) and its hotel count.
fn row(listed: TenantWithDomains, counts: &HashMap<String, i64>) -> TenantRow {
    let tenant = &listed.tenant;
    TenantRow {
        name: tenant.name.clone(),
        schema: tenant.schema_name.as_str().to_owned(),
        hotels: counts.get(tenant.schema_name.as_str()).copied(),
        created: tenant.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        domains: listed
            .domains
            .iter()
            .map(|d| DomainRow {
                domain: d.domain.clone(),
                is_primary: d.is_primary,
            })
            .collect(),
    }
}

/// Every tenant with its domains (primary first) and hotel count.
async fn tenant_rows(tenancy: &Tenancy) -> Result<Vec<TenantRow>, PanelError> {
    let pool = pool(tenancy)?;
    let rows = blocking(move || {
        let listed =
            pool.with_public(|c| Ok::<_, Problem>(TenantRegistry::list_with_domains(c)?))?;
        let tenants: Vec<&Tenant> = listed.iter().map(|l| &l.tenant).collect();
        let counts = count_hotels(&pool, &tenants);
        Ok(listed.into_iter().map(|l| row(l, &counts)).collect())
    })
    .await?;
    Ok(rows)
}

/// One tenant's row, read now.
async fn tenant_row(tenancy: &Tenancy, tenant: Tenant) -> Result<TenantRow, PanelError> {
    let pool = pool(tenancy)?;
    let row = blocking(move || {
        let listed =
            pool.with_public(|c| Ok::<_, Problem>(TenantRegistry::with_domains(c, tenant)?))?;
        let counts = count_hotels(&pool, &[&listed.tenant]);
        Ok(row(listed, &counts))
    })
    .await?;
    Ok(row)
}

async fn list_page(
    tenancy: &Tenancy,
    layout: Layout,
    input: TenantInput,
    errors: Errors,
    status: Status,
) -> Result<Html, PanelError> {
    let tenants = tenant_rows(tenancy).await?;
    let page = Tenants {
        layout,
        tenants,
        input,
        errors,
    };
    Html::render(&page, status)
}

/// The tenants, or the login page without a session.
#[get("/")]
async fn index(
    session: Result<AdminSession, PanelError>,
    cookies: &CookieJar<'_>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Html, PanelError> {
    let session = match session {
        Ok(session) => session,
        Err(PanelError::LoginNeeded) => return session::login_page(cookies, None, Status::Ok),
        Err(e) => return Err(e),
    };
    let layout = sessions.layout(&session);
    list_page(
        tenancy,
        layout,
        TenantInput::default(),
        Errors::default(),
        Status::Ok,
    )
    .await
}

#[derive(FromForm)]
struct TenantForm {
    csrf: Option<String>,
    name: Option<String>,
    schema_name: Option<String>,
    domain: Option<String>,
}

impl CsrfForm for TenantForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// The form field a crate error is about, if it is about one.
fn tenant_field(e: &Error) -> Option<&'static str> {
    match e {
        Error::InvalidTenantName { .. } | Error::TenantExists { .. } => Some("name"),
        Error::InvalidSchemaName { .. } | Error::SchemaExists { .. } => Some("schema_name"),
        Error::InvalidDomain { .. } | Error::DomainExists { .. } => Some("domain"),
        _ => None,
    }
}

/// Checks the form with the same rules as the JSON API; field messages stay on the form.
fn check_tenant_form(input: &TenantInput) -> Result<diesel_tenancy::NewTenant, Errors> {
    let mut errors = FieldErrors::new();
    let given = |s: &str| (!s.is_empty()).then_some(s.to_owned());
    let (name, schema, domain) = (
        given(&input.name),
        given(&input.schema_name),
        given(&input.domain),
    );
    if name.is_none() {
        errors.insert("name".into(), vec![validate::BLANK.into()]);
    }
    let domains: Vec<&str> = domain.as_deref().into_iter().collect();
    let new = admin::check_new_tenant(name.as_deref(), schema.as_deref(), &domains, &mut errors);
    if let Some(messages) = errors.remove("domains") {
        errors.insert("domain".into(), messages);
    }
    let mut errors = Errors(errors);
    for messages in errors.0.values_mut() {
        for m in messages.iter_mut() {
            *m = sentence(m);
        }
    }
    if errors.0.is_empty() {
        Ok(new)
    } else {
        Err(errors)
    }
}

#[post("/tenants", data = "<form>")]
async fn create(
    form: Result<Posted<TenantForm>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Reply, PanelError> {
    let Posted { session, form } = form?;
    let trimmed = |s: Option<String>| s.unwrap_or_default().trim().to_owned();
    let input = TenantInput {
        name: trimmed(form.name),
        schema_name: trimmed(form.schema_name),
        domain: trimmed(form.domain),
    };
    let (errors, status) = match check_tenant_form(&input) {
        Err(errors) => (errors, Status::BadRequest),
        Ok(new) => match tenancy.create_tenant(new).await {
            Ok(tenant) => {
                let text = format!(
                    "Tenant “{}” created with schema {}.",
                    tenant.name, tenant.schema_name
                );
                sessions.flash(&session, Flash::ok(text));
                return Ok(Reply::SeeOther(BASE.into()));
            }
            Err(e) => refused(e, &input)?,
        },
    };
    let layout = sessions.layout(&session);
    let page = list_page(tenancy, layout, input, errors, status).await?;
    Ok(page.into())
}

/// A tenant the registry refused: the message for its field (a taken name 409, an invalid
/// one 400), or the error page for anything else.
fn refused(e: Error, input: &TenantInput) -> Result<(Errors, Status), PanelError> {
    let Some(field) = tenant_field(&e) else {
        return Err(e.into());
    };
    // A derived schema is the name's problem: show it there.
    let field = match field {
        "schema_name" if input.schema_name.is_empty() => "name",
        other => other,
    };
    let mut errors = Errors::default();
    errors.add(field, sentence(&e.to_string()));
    Ok((errors, Problem::from(e).status()))
}

pub async fn show_page(
    tenancy: &Tenancy,
    layout: Layout,
    tenant: Tenant,
    domain_input: String,
    errors: Errors,
    status: Status,
) -> Result<Html, PanelError> {
    let schema = tenant.schema_name.clone();
    let rows = Rows::Chosen(pool(tenancy)?, schema.clone());
    let hotels = rows.list().await?;
    let hotels = hotels
        .into_iter()
        .map(|h| HotelRow {
            thumbnail: h
                .picture
                .as_deref()
                .map(|p| super::hotels::thumb_url(schema.as_str(), p)),
            id: h.id,
            name: h.name,
            location: h.location,
            description: h.description,
        })
        .collect();
    let page = TenantPage {
        layout,
        tenant: tenant_row(tenancy, tenant).await?,
        hotels,
        domain_input,
        errors,
    };
    Html::render(&page, status)
}

#[get("/tenants/<schema>")]
async fn show(
    schema: &str,
    session: Result<AdminSession, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Html, PanelError> {
    let session = session?;
    let tenant = find_tenant(tenancy, schema).await?;
    let layout = sessions.layout(&session);
    show_page(
        tenancy,
        layout,
        tenant,
        String::new(),
        Errors::default(),
        Status::Ok,
    )
    .await
}

#[get("/tenants/<schema>/delete")]
async fn confirm_delete(
    schema: &str,
    session: Result<AdminSession, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Html, PanelError> {
    let session = session?;
    let tenant = find_tenant(tenancy, schema).await?;
    let page = TenantDelete {
        layout: sessions.layout(&session),
        tenant: tenant_row(tenancy, tenant).await?,
    };
    Html::render(&page, Status::Ok)
}

#[derive(FromForm)]
struct DeleteForm {
    csrf: Option<String>,
    /// A checkbox, off unless ticked: drop the schema too.
    drop_schema: bool,
}

impl CsrfForm for DeleteForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

#[post("/tenants/<schema>/delete", data = "<form>")]
async fn delete(
    schema: &str,
    form: Result<Posted<DeleteForm>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
    media: &State<MediaRoot>,
) -> Result<Reply, PanelError> {
    let Posted { session, form } = form?;
    let tenant = find_tenant(tenancy, schema).await?;
    let drop_schema = form.drop_schema;
    let deleted = tenancy
        .delete_tenant(tenant.name.clone(), drop_schema)
        .await
        .map_err(admin::not_found_on_miss)?;
    let text = if drop_schema {
        // The pictures went with the rows that named them.
        let dir = crate::picture::tenant_dir(&media.0, deleted.schema_name.as_str());
        let _ = rocket::tokio::fs::remove_dir_all(dir).await;
        format!(
            "Tenant “{}” deleted, and its schema {} dropped with its data.",
            deleted.name, deleted.schema_name
        )
    } else {
        format!(
            "Tenant “{}” deleted. Its schema {} and its data were kept.",
            deleted.name, deleted.schema_name
        )
    };
    sessions.flash(&session, Flash::ok(text));
    Ok(Reply::SeeOther(BASE.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences() {
        assert_eq!(
            sentence("a tenant named `x` already exists"),
            "A tenant named `x` already exists."
        );
        assert_eq!(sentence("Done."), "Done.");
        assert_eq!(sentence(""), ".");
    }

    #[test]
    fn tenant_form_checks() {
        let input = |name: &str, schema: &str, domain: &str| TenantInput {
            name: name.into(),
            schema_name: schema.into(),
            domain: domain.into(),
        };
        let new = check_tenant_form(&input("Acme", "", "acme.test")).unwrap();
        assert_eq!(new.name, "Acme");
        assert_eq!(new.schema_name, None);
        assert_eq!(new.domains.len(), 1);

        let errors = check_tenant_form(&input("", "pg_x", "not a domain")).unwrap_err();
        assert_eq!(errors.of("name"), [validate::BLANK]);
        assert!(errors.has("schema_name"));
        assert!(errors.has("domain"));
        assert!(!errors.has("domains"));
        let errors = check_tenant_form(&input("public", "", "")).unwrap_err();
        assert!(errors.of("name")[0].starts_with("Invalid tenant name"));
    }
}
