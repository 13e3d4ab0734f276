//! [`Face`]: which web stack serves the hotel API (`HOTEL_FACE`). Every face serves the
//! same API from the same database with the same isolation; the tenant admin API and the
//! panel stay on the sync pool.

use std::fmt;

/// The web stack serving `/hotels/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Face {
    /// Rocket, each query on a blocking thread over the sync pool (`TenantDb`).
    Rocket,
    /// Rocket, each query awaited on the request's task over the async pool
    /// (`AsyncTenantDb`).
    RocketAsync,
    /// axum, the tenant resolved by `diesel_tenancy::axum`'s layer, each query awaited
    /// on the async pool (`axum_face/`; the admin API too, the panel not).
    Axum,
}

impl Face {
    /// Every face, by its setting's name.
    pub const ALL: [(&'static str, Face); 3] = [
        ("rocket", Face::Rocket),
        ("rocket-async", Face::RocketAsync),
        ("axum", Face::Axum),
    ];

    /// The face called `name` (any case), or a message listing them.
    pub fn parse(name: &str) -> Result<Face, String> {
        Face::ALL
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.trim()))
            .map(|(_, face)| *face)
            .ok_or_else(|| {
                let names: Vec<&str> = Face::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "HOTEL_FACE is {name:?}: use {} (the default is rocket)",
                    names.join(", ")
                )
            })
    }

    /// The setting's name.
    pub fn name(self) -> &'static str {
        match self {
            Face::Rocket => "rocket",
            Face::RocketAsync => "rocket-async",
            Face::Axum => "axum",
        }
    }
}

impl fmt::Display for Face {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_face_parses_back_from_its_name() {
        for (name, face) in Face::ALL {
            assert_eq!(Face::parse(name), Ok(face));
            assert_eq!(face.name(), name);
        }
        assert_eq!(Face::parse(" Rocket-Async "), Ok(Face::RocketAsync));
        assert_eq!(Face::parse("AXUM"), Ok(Face::Axum));
        let e = Face::parse("warp").unwrap_err();
        assert!(e.contains("rocket-async") && e.contains("warp"), "{e}");
    }
}
