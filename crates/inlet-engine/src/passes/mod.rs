//! The passes a sync runs over a stream: flat, family and reconcile.

pub(crate) mod family;
pub(crate) mod flat;
pub(crate) mod reconcile;
