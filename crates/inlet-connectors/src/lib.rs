//! inlet-connectors: one folder per provider, each mapping a provider's API onto streams.
//!
//! A provider folder only says how to build a request, parse a page, find the next cursor
//! and map items to rows (`mod.rs`, `client.rs`, `model.rs`, `streams.rs`). Paging,
//! checkpoints, retries and rate limits live in `inlet-engine` and `inlet-http`.
//!
//! Each folder exports one [`provider::ProviderDef`] (`PROVIDER`): its streams, interval,
//! quota, rate headers, image hosts, connect parameters, builder and `verify`.
//! [`provider::REGISTRY`] lists them, one line each; everything else reads it.
#![deny(missing_docs)]

pub mod build;
pub mod ebay;
pub mod github;
pub mod gmail;
pub mod provider;
pub mod reddit;
pub mod rest;
pub mod slack;
pub mod tiktok;
