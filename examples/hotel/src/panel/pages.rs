//! The panel's pages: one askama template each (`templates/` of the hotel package), and what they show.

use askama::Template;

use super::session::Flash;
use crate::validate::FieldErrors;

/// What every page of a logged-in admin has: the CSRF token for its forms (the logout
/// button included) and a message left by the previous form.
pub struct Layout {
    pub csrf: String,
    pub flash: Option<Flash>,
}

/// Field messages of a form, shown next to their fields.
#[derive(Debug, Default)]
pub struct Errors(pub FieldErrors);

impl Errors {
    /// The messages for `field` (none if it is fine).
    pub fn of(&self, field: &str) -> &[String] {
        self.0.get(field).map(Vec::as_slice).unwrap_or_default()
    }

    pub fn has(&self, field: &str) -> bool {
        !self.of(field).is_empty()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct Login<'a> {
    pub csrf: String,
    pub error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub code: u16,
    pub reason: &'a str,
    pub message: &'a str,
}

/// A domain as listed.
pub struct DomainRow {
    pub domain: String,
    pub is_primary: bool,
}

/// A tenant as listed.
pub struct TenantRow {
    pub name: String,
    pub schema: String,
    pub domains: Vec<DomainRow>,
    /// `None` when the schema could not be counted (e.g. dropped by hand).
    pub hotels: Option<i64>,
    pub created: String,
}

/// What the new-tenant form was sent with.
#[derive(Debug, Default)]
pub struct TenantInput {
    pub name: String,
    pub schema_name: String,
    pub domain: String,
}

#[derive(Template)]
#[template(path = "tenants.html")]
pub struct Tenants {
    pub layout: Layout,
    pub tenants: Vec<TenantRow>,
    pub input: TenantInput,
    pub errors: Errors,
}

/// A hotel as listed on its tenant's page.
pub struct HotelRow {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub description: String,
    /// The thumbnail's URL.
    pub thumbnail: Option<String>,
}

#[derive(Template)]
#[template(path = "tenant.html")]
pub struct TenantPage {
    pub layout: Layout,
    pub tenant: TenantRow,
    pub hotels: Vec<HotelRow>,
    /// The add-domain form's value and messages.
    pub domain_input: String,
    pub errors: Errors,
}

#[derive(Template)]
#[template(path = "tenant_delete.html")]
pub struct TenantDelete {
    pub layout: Layout,
    pub tenant: TenantRow,
}

/// What the hotel form shows: the values sent (or stored) and the current picture.
#[derive(Debug, Default)]
pub struct HotelInput {
    pub name: String,
    pub location: String,
    pub description: String,
}

/// Where a stored picture and its thumbnail are shown.
pub struct PictureLinks {
    pub full: String,
    pub thumb: String,
}

#[derive(Template)]
#[template(path = "hotel.html")]
pub struct HotelPage {
    pub layout: Layout,
    pub tenant_name: String,
    pub schema: String,
    /// `None` for a new hotel.
    pub id: Option<i64>,
    /// Where the form posts.
    pub action: String,
    pub input: HotelInput,
    /// The stored picture.
    pub picture: Option<PictureLinks>,
    pub errors: Errors,
}
