//! Domain forms on a tenant's page: add one (optionally as the primary), make one the
//! primary, remove one. Each change reloads this process's registry cache, so it applies
//! to the next request.

use diesel_tenancy::rocket::Tenancy;
use diesel_tenancy::{Domain, DomainName, Error, Tenant, TenantRegistry};
use rocket::form::FromForm;
use rocket::http::Status;
use rocket::{post, Route, State};

use super::pages::Errors;
use super::session::{CsrfForm, Flash, Posted, Sessions};
use super::tenants::{find_tenant, pool, sentence, show_page, tenant_url};
use super::{PanelError, Reply};
use crate::admin::{self, blocking};
use crate::problem::Problem;
use crate::validate;

pub fn routes() -> Vec<Route> {
    rocket::routes![add_domain, set_primary, remove_domain]
}

#[derive(FromForm)]
struct DomainForm {
    csrf: Option<String>,
    domain: Option<String>,
    /// A checkbox, off unless ticked.
    primary: bool,
}

impl CsrfForm for DomainForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

#[post("/tenants/<schema>/domains", data = "<form>")]
async fn add_domain(
    schema: &str,
    form: Result<Posted<DomainForm>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Reply, PanelError> {
    let Posted { session, form } = form?;
    let tenant = find_tenant(tenancy, schema).await?;
    let input = form.domain.unwrap_or_default().trim().to_owned();
    let (status, message) = match check_domain(&input) {
        Err(message) => (Status::BadRequest, message),
        Ok(domain) => match register(tenancy, &tenant, domain, form.primary).await? {
            Err(taken) => (Status::Conflict, taken),
            Ok(row) => {
                let text = format!("Domain {} added to “{}”.", row.domain, tenant.name);
                sessions.flash(&session, Flash::ok(text));
                return Ok(Reply::SeeOther(tenant_url(schema)));
            }
        },
    };
    let mut errors = Errors::default();
    errors.add("domain", message);
    let layout = sessions.layout(&session);
    let page = show_page(tenancy, layout, tenant, input, errors, status).await?;
    Ok(page.into())
}

/// The typed domain, or the message to show next to the field.
fn check_domain(input: &str) -> Result<DomainName, String> {
    if input.is_empty() {
        return Err(validate::BLANK.into());
    }
    DomainName::new(input).map_err(|e| sentence(&e.to_string()))
}

/// Registers `domain` for `tenant` and reloads the cache; `Ok(Err(message))` when the
/// domain is already registered.
async fn register(
    tenancy: &Tenancy,
    tenant: &Tenant,
    domain: DomainName,
    primary: bool,
) -> Result<Result<Domain, String>, PanelError> {
    let (pool, name) = (pool(tenancy)?, tenant.name.clone());
    let added = blocking(move || {
        pool.with_public(|c| {
            Ok::<_, Problem>(TenantRegistry::add_domain(c, &name, &domain, primary))
        })
    })
    .await?;
    match added {
        Ok(row) => {
            admin::refresh(tenancy).await;
            Ok(Ok(row))
        }
        Err(e @ Error::DomainExists { .. }) => Ok(Err(sentence(&e.to_string()))),
        Err(e) => Err(admin::not_found_on_miss(e).into()),
    }
}

#[derive(FromForm)]
struct DomainRef {
    csrf: Option<String>,
    domain: Option<String>,
}

impl CsrfForm for DomainRef {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

/// Which change to make to one of a tenant's domains.
#[derive(Clone, Copy)]
enum DomainChange {
    MakePrimary,
    Remove,
}

/// Applies `change` to a domain of the tenant in the URL (a domain of another tenant is
/// a 404), refreshes the registry cache, and goes back to the tenant's page.
async fn change_domain(
    schema: &str,
    form: Result<Posted<DomainRef>, PanelError>,
    change: DomainChange,
    sessions: &Sessions,
    tenancy: &Tenancy,
) -> Result<Reply, PanelError> {
    let Posted { session, form } = form?;
    let tenant = find_tenant(tenancy, schema).await?;
    let domain = DomainName::new(form.domain.as_deref().unwrap_or_default())
        .map_err(|_| PanelError::NotFound)?;
    let pool = pool(tenancy)?;
    let shown = domain.as_str().to_owned();
    let tenant_id = tenant.id;
    blocking(move || {
        pool.with_public(|c| {
            let own = TenantRegistry::find_by_domain(c, &domain)?;
            if own.is_none_or(|t| t.id != tenant_id) {
                return Err(Problem::not_found());
            }
            match change {
                DomainChange::MakePrimary => TenantRegistry::set_primary(c, &domain),
                DomainChange::Remove => TenantRegistry::remove_domain(c, &domain),
            }
            .map_err(admin::not_found_on_miss)
        })
    })
    .await?;
    admin::refresh(tenancy).await;
    let text = match change {
        DomainChange::MakePrimary => {
            format!("{shown} is now the primary domain of “{}”.", tenant.name)
        }
        DomainChange::Remove => format!("Domain {shown} removed from “{}”.", tenant.name),
    };
    sessions.flash(&session, Flash::ok(text));
    Ok(Reply::SeeOther(tenant_url(schema)))
}

#[post("/tenants/<schema>/domains/primary", data = "<form>")]
async fn set_primary(
    schema: &str,
    form: Result<Posted<DomainRef>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Reply, PanelError> {
    change_domain(schema, form, DomainChange::MakePrimary, sessions, tenancy).await
}

#[post("/tenants/<schema>/domains/remove", data = "<form>")]
async fn remove_domain(
    schema: &str,
    form: Result<Posted<DomainRef>, PanelError>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Reply, PanelError> {
    change_domain(schema, form, DomainChange::Remove, sessions, tenancy).await
}
