//! The passes a sync runs over a stream (flat, family and reconcile, each given the run's
//! [`RunContext`](crate::context::RunContext)) and the import pass that applies an export
//! file as a snapshot.

pub(crate) mod family;
pub(crate) mod flat;
pub mod import;
pub(crate) mod reconcile;
