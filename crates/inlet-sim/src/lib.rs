//! inlet-sim: faithful, fast, deterministic local simulators of the provider APIs inlet syncs.
//!
//! Each simulator is a real HTTP/1.1 server bound to `127.0.0.1` on a random port, so connectors
//! are tested through their real HTTP stack. A simulator
//!
//! * serves the provider's documented API (see `shared/providers/*.md`) with payloads shaped like
//!   the recorded fixtures,
//! * generates its data procedurally from a seed (a million items cost O(1) memory) and offers
//!   hooks to add, edit and delete items between syncs, plus the ground truth for assertions,
//! * enforces the provider's rate limits (429 + a violation counter),
//! * injects seeded faults: latency, 5xx, connection resets, truncated bodies, 429 bursts and
//!   token expiry,
//! * logs every request so tests can assert request budgets.
//!
//! Time comes from an injected [`inlet_core::Clock`], so token expiry and rate-limit windows are
//! deterministic under [`inlet_core::ManualClock`].
//!
//! Simulators: [`reddit`], [`github`], [`ebay`], [`slack`], [`gmail`], and [`images`] for the image hosts Reddit
//! messages link to; [`feed`] is an in-memory change feed (no server) for the engine's
//! realtime loop.
#![deny(missing_docs)]

pub mod ebay;
pub mod feed;
pub mod github;
pub mod gmail;
pub mod images;
mod json;
pub mod reddit;
mod server;
pub mod slack;
mod util;
