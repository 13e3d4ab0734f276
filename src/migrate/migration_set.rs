//! [`MigrationSet`]: several migration sources applied against one tracking table.

use std::collections::HashSet;
use std::sync::Arc;

use diesel::migration::{Migration, MigrationSource};
use diesel::pg::Pg;

use crate::error::{Error, Result, SchemaRef};

/// A shareable migration source (e.g. an `embed_migrations!` constant).
pub(crate) type Source = Arc<dyn MigrationSource<Pg> + Send + Sync>;

/// The union of several sources. Diesel keys migrations by version, so two sources that
/// share a version would silently lose one: [`MigrationSet::versions`] refuses that.
#[derive(Clone, Default)]
pub(crate) struct MigrationSet(Vec<Source>);

impl std::fmt::Debug for MigrationSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MigrationSet").field(&self.0.len()).finish()
    }
}

impl MigrationSet {
    pub(crate) fn new(sources: Vec<Source>) -> Self {
        MigrationSet(sources)
    }

    /// Every version in the set, sorted; an error if a version appears twice.
    pub(crate) fn versions(&self, place: &SchemaRef) -> Result<Vec<String>> {
        let mut seen = HashSet::new();
        let mut versions = Vec::new();
        for migration in self.migrations().map_err(|source| Error::Migration {
            place: place.clone(),
            source,
        })? {
            let version = migration.name().version().to_string();
            if !seen.insert(version.clone()) {
                return Err(Error::MigrationVersionConflict { version });
            }
            versions.push(version);
        }
        versions.sort();
        Ok(versions)
    }
}

impl MigrationSource<Pg> for MigrationSet {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<Pg>>>> {
        let mut all = Vec::new();
        for source in &self.0 {
            all.extend(source.migrations()?);
        }
        Ok(all)
    }
}
