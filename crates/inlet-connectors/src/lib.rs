//! inlet-connectors: one folder per provider, each mapping a provider's API onto streams.
//!
//! A provider folder only says how to build a request, parse a page, find the next cursor
//! and map items to rows (`mod.rs`, `client.rs`, `model.rs`, `streams.rs`). Paging,
//! checkpoints, retries and rate limits live in `inlet-engine` and `inlet-http`.
#![deny(missing_docs)]

pub mod build;
pub mod ebay;
pub mod github;
pub mod reddit;
pub mod rest;
pub mod tiktok;
