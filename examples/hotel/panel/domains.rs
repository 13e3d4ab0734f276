//! Domain forms on a tenant's page: add one (optionally as the primary), make one the
//! primary, remove one. Each change reloads this process's registry cache, so it applies
//! to the next request.

use diesel_tenancy::rocket::Tenancy;
use diesel_tenancy::{DomainName, Error, TenantRegistry};
use rocket::form::FromForm;
use rocket::http::Status;
use rocket::{post, Route, State};

use super::pages::Errors;
use super::session::{CsrfForm, Flash, Posted, Sessions};
use super::tenants::{find_tenant, pool, sentence, show_page, tenant_field, tenant_url};
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
    /// A checkbox: present means on.
    primary: Option<String>,
}

impl CsrfForm for DomainForm {
    fn csrf(&self) -> Option<&str> {
        self.csrf.as_deref()
    }
}

#[post("/tenants/<schema>/domains", data = "<form>")]
async fn add_domain(
    schema: &str,
    form: Posted<DomainForm>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Reply, PanelError> {
    let (session, form) = form.0?;
    let tenant = find_tenant(tenancy, schema).await?;
    let input = form.domain.unwrap_or_default().trim().to_owned();
    let primary = form.primary.is_some();
    let mut errors = Errors::default();
    let mut status = Status::BadRequest;
    if input.is_empty() {
        errors.add("domain", validate::BLANK);
    } else {
        match DomainName::new(&input) {
            Err(e) => errors.add("domain", sentence(&e.to_string())),
            Ok(domain) => {
                let (pool, name) = (pool(tenancy)?, tenant.name.clone());
                let added = blocking(move || {
                    pool.with_public(|c| {
                        TenantRegistry::add_domain(c, &name, &domain, primary)
                            .map_err(RegistryOutcome::from)
                    })
                    .map_err(RegistryOutcome::into_problem)
                })
                .await;
                match added {
                    Ok(row) => {
                        admin::refresh(tenancy);
                        let text = format!("Domain {} added to “{}”.", row.domain, tenant.name);
                        sessions.flash(&session, Flash::ok(text));
                        return Ok(Reply::SeeOther(tenant_url(schema)));
                    }
                    Err(Problem::Fields(fields)) => {
                        status = Status::Conflict;
                        errors = Errors(fields);
                    }
                    Err(other) => return Err(other.into()),
                }
            }
        }
    }
    let layout = sessions.layout(&session);
    Ok(show_page(tenancy, layout, tenant, input, errors, status)
        .await?
        .into())
}

/// A registry error inside a closure: a domain conflict becomes the form's message, an
/// unknown tenant a 404, anything else stays the crate's error.
enum RegistryOutcome {
    Field(&'static str, String),
    Other(Error),
}

impl From<Error> for RegistryOutcome {
    fn from(e: Error) -> Self {
        match tenant_field(&e) {
            Some(field) => RegistryOutcome::Field(field, sentence(&e.to_string())),
            None => RegistryOutcome::Other(e),
        }
    }
}

impl RegistryOutcome {
    fn into_problem(self) -> Problem {
        match self {
            RegistryOutcome::Field(field, message) => Problem::field(field, &message),
            RegistryOutcome::Other(e) => admin::not_found_on_miss(e),
        }
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
    form: Posted<DomainRef>,
    change: DomainChange,
    sessions: &Sessions,
    tenancy: &Tenancy,
) -> Result<Reply, PanelError> {
    let (session, form) = form.0?;
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
    admin::refresh(tenancy);
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
    form: Posted<DomainRef>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Reply, PanelError> {
    change_domain(schema, form, DomainChange::MakePrimary, sessions, tenancy).await
}

#[post("/tenants/<schema>/domains/remove", data = "<form>")]
async fn remove_domain(
    schema: &str,
    form: Posted<DomainRef>,
    sessions: &State<Sessions>,
    tenancy: &State<Tenancy>,
) -> Result<Reply, PanelError> {
    change_domain(schema, form, DomainChange::Remove, sessions, tenancy).await
}
