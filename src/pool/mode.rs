//! [`PoolMode`]: how a pool puts a connection into its scope.

/// How a pool puts a connection into its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PoolMode {
    /// Every checkout sets the session's `search_path` and proves the session clean in
    /// one round trip; the borrower's statements then run in autocommit.
    ///
    /// The fastest mode. It needs a direct connection or a pooler in *session* mode.
    ///
    /// ### Warning
    /// Behind PgBouncer in *transaction* pooling mode a session `SET` leaks to other
    /// clients. The pool refuses to build there; use [`PoolMode::TransactionLocal`].
    #[default]
    Session,
    /// Each checkout is a transaction whose first round trip proves the session clean
    /// and sets the path with `SET LOCAL search_path`.
    ///
    /// Safe behind PgBouncer's transaction pooling. The work is committed by
    /// [`TenantConnection::commit`](crate::TenantConnection::commit) or by returning
    /// `Ok` from [`TenantPool::with_tenant`](crate::TenantPool::with_tenant); a guard
    /// dropped without commit rolls back.
    TransactionLocal,
}
