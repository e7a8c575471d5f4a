//! What a provider is, in one value: each provider folder exports one [`ProviderDef`]
//! (`reddit::PROVIDER`, ...) and [`REGISTRY`] lists them, one line each. The CLI's
//! `connect` commands, the API's provider list and OpenAPI schemas, the scheduler's
//! intervals, the attachment hosts, the docs check and the schema-drift tests all read
//! the registry, so a provider cannot be known to one of them and missing from another.

use inlet_core::{Connection, Connector, ConnectorError, StreamSpec, provider_config};
use inlet_http::{HttpConfig, Quota, RateHeaders};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;

/// Every provider this build knows, one line each.
pub static REGISTRY: &[&ProviderDef] = &[
    &crate::reddit::PROVIDER,
    &crate::github::PROVIDER,
    &crate::ebay::PROVIDER,
    &crate::slack::PROVIDER,
    &crate::gmail::PROVIDER,
    &crate::tiktok::PROVIDER,
    &crate::rest::PROVIDER,
];

/// One parameter of `inlet connect <provider>` (a `--flag`). Written with the `const`
/// builders: `Param::new("token", "The API token.").env("X_TOKEN").secret().required()`.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// The flag's name without `--` (`client-id`).
    pub flag: &'static str,
    /// The environment variable that may give it instead (`REDDIT_CLIENT_ID`).
    pub env: Option<&'static str>,
    /// A credential: never printed, its environment value hidden from `--help`.
    pub secret: bool,
    /// What it is, for `--help` and the docs.
    pub help: &'static str,
    /// The value when the flag is not given (shown by `--help`).
    pub default: Option<&'static str>,
    /// The flag must be given (or its environment variable set).
    pub required: bool,
    /// The flag may be given more than once; every value is kept, in order.
    pub repeat: bool,
    /// The only values accepted (empty: any).
    pub values: &'static [&'static str],
}

impl Param {
    /// An optional flag taking one value.
    pub const fn new(flag: &'static str, help: &'static str) -> Param {
        Param {
            flag,
            env: None,
            secret: false,
            help,
            default: None,
            required: false,
            repeat: false,
            values: &[],
        }
    }

    /// Also read from the environment variable `var`.
    pub const fn env(self, var: &'static str) -> Param {
        Param {
            env: Some(var),
            ..self
        }
    }

    /// A credential.
    pub const fn secret(self) -> Param {
        Param {
            secret: true,
            ..self
        }
    }

    /// Its value when not given.
    pub const fn default_value(self, value: &'static str) -> Param {
        Param {
            default: Some(value),
            ..self
        }
    }

    /// It must be given.
    pub const fn required(self) -> Param {
        Param {
            required: true,
            ..self
        }
    }

    /// It may be given more than once.
    pub const fn repeat(self) -> Param {
        Param {
            repeat: true,
            ..self
        }
    }

    /// Only these values are accepted.
    pub const fn values(self, values: &'static [&'static str]) -> Param {
        Param { values, ..self }
    }
}

/// The values given for a provider's [`Param`]s, by flag (defaults filled in), as
/// `inlet connect` parsed them; a provider's `from_flags` reads them.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    values: std::collections::BTreeMap<String, Vec<String>>,
}

impl Flags {
    /// Set the values of `flag`.
    pub fn set(&mut self, flag: &str, values: Vec<String>) {
        self.values.insert(flag.to_string(), values);
    }

    /// The (first) value of `flag`, if given.
    pub fn get(&self, flag: &str) -> Option<&str> {
        self.values
            .get(flag)
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    /// The value of `flag`, which must be given.
    pub fn required(&self, flag: &str) -> Result<String, ConnectorError> {
        self.get(flag)
            .map(str::to_string)
            .ok_or_else(|| ConnectorError::Config(format!("--{flag} is required")))
    }

    /// Every value of `flag`, in order (empty when not given).
    pub fn all(&self, flag: &str) -> Vec<String> {
        self.values.get(flag).cloned().unwrap_or_default()
    }

    /// The value of `flag` parsed as a `T`, if given.
    pub fn parse<T>(&self, flag: &str) -> Result<Option<T>, ConnectorError>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(flag)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ConnectorError::Config(format!("--{flag} {v:?}: {e}")))
            })
            .transpose()
    }
}

/// A new connection's config, credentials and account, as the provider made them from
/// the `inlet connect` flags (before `verify`).
#[derive(Debug, Clone)]
pub struct Input {
    /// The config to store.
    pub config: Value,
    /// The credentials to store.
    pub credentials: Value,
    /// The account, when the flags name it.
    pub account: Option<String>,
}

/// A connection's config and credentials after the provider accepted them.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The config to store (the provider may fill in what it learned, e.g. the account).
    pub config: Value,
    /// The credentials to store (a provider may have rotated its refresh token).
    pub credentials: Value,
    /// The account as the provider names it, when it says.
    pub account: Option<String>,
}

/// A future a provider's `verify` returns.
pub type VerifyFuture = Pin<Box<dyn Future<Output = Result<Verified, ConnectorError>> + Send>>;

/// Builds a connector for the connection named by the first argument from its config
/// (engine keys removed) and opened credentials.
pub type BuildFn = fn(&str, Value, Value, HttpConfig) -> Result<Box<dyn Connector>, ConnectorError>;

/// Checks a config and credentials against the provider with one cheap request.
pub type VerifyFn = fn(Value, Value, HttpConfig) -> VerifyFuture;

/// Makes a new connection's config and credentials from the `inlet connect` flags,
/// validating them (no request is sent).
pub type FromFlagsFn = fn(&Flags) -> Result<Input, ConnectorError>;

/// A JSON schema and the schemas it refers to, for the API's OpenAPI document.
#[cfg(feature = "openapi")]
pub type SchemaFn = fn() -> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)>;

/// How the API describes a provider's config and credentials.
#[cfg(feature = "openapi")]
#[derive(Debug, Clone, Copy)]
pub struct ApiSchemas {
    /// The config's schema first, then the schemas it refers to.
    pub config: SchemaFn,
    /// The credentials' schema first, then the schemas they refer to.
    pub credentials: SchemaFn,
}

/// How a provider syncs: pulled by the engine, or filled by `inlet import` files.
#[derive(Clone, Copy)]
pub enum Kind {
    /// Synced by the engine through the connector `build` makes; checked by `verify`.
    Sync {
        /// Builds the connector.
        build: BuildFn,
        /// Checks config and credentials before a connection is stored.
        verify: VerifyFn,
        /// Reads the `inlet connect` flags.
        from_flags: FromFlagsFn,
    },
    /// Filled by `inlet import <provider> FILE`; never synced or scheduled.
    Import,
}

/// Everything inlet knows about one provider.
pub struct ProviderDef {
    /// Its id (`provider` of a connection).
    pub name: &'static str,
    /// Its name in messages (`GitHub`).
    pub title: &'static str,
    /// One line for `inlet connect --help`.
    pub about: &'static str,
    /// Its streams and the tables they fill.
    pub streams: &'static [StreamSpec],
    /// The scheduler's default interval, in minutes.
    pub interval_minutes: u32,
    /// The documented request quota, held to while the provider reports none.
    pub quota: Option<Quota>,
    /// The headers the provider reports its rate budget in.
    pub rate_headers: Option<RateHeaders>,
    /// Hosts its attachment links point at, fetched by default.
    pub image_hosts: &'static [&'static str],
    /// The parameters of `inlet connect <name>`.
    pub params: &'static [Param],
    /// Its config with every default filled in (its URLs are its own hosts).
    pub default_config: fn() -> Value,
    /// Synced or imported.
    pub kind: Kind,
    /// Config and credential schemas for the API (`None`: not accepted by the API).
    #[cfg(feature = "openapi")]
    pub api: Option<ApiSchemas>,
}

impl std::fmt::Debug for ProviderDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ProviderDef {
    /// Synced by the engine (not import-only).
    pub fn syncs(&self) -> bool {
        matches!(self.kind, Kind::Sync { .. })
    }

    /// Every table it writes (record tables, then derived tables), each once.
    pub fn tables(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        let derived = self
            .streams
            .iter()
            .filter_map(|s| s.derived.map(|d| d.table));
        for t in self.streams.iter().map(|s| s.table).chain(derived) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// What `inlet connect` verifies, in messages: the one credential's name when there
    /// is one (`token`), else `credentials`.
    pub fn credential_noun(&self) -> String {
        let mut secrets = self.params.iter().filter(|p| p.secret);
        match (secrets.next(), secrets.next()) {
            (Some(p), None) => p.flag.replace('-', " "),
            _ => "credentials".to_string(),
        }
    }

    /// Make a new connection's config and credentials from the `inlet connect` flags.
    pub fn from_flags(&self, flags: &Flags) -> Result<Input, ConnectorError> {
        match self.kind {
            Kind::Sync { from_flags, .. } => from_flags(flags),
            Kind::Import => Err(self.imported()),
        }
    }

    fn imported(&self) -> ConnectorError {
        ConnectorError::Config(format!(
            "{} connections are filled by `inlet import {}`",
            self.title, self.name
        ))
    }

    /// Check `config` and `credentials` against the provider.
    pub async fn verify(
        &self,
        config: Value,
        credentials: Value,
        http: HttpConfig,
    ) -> Result<Verified, ConnectorError> {
        match self.kind {
            Kind::Sync { verify, .. } => verify(config, credentials, http).await,
            Kind::Import => Err(self.imported()),
        }
    }
}

/// The provider named `name`.
pub fn find(name: &str) -> Option<&'static ProviderDef> {
    REGISTRY.iter().copied().find(|p| p.name == name)
}

/// Every registered provider's streams (a `rest` connection's come from its spec), for
/// [`inlet_core::Store::ensure_tables`] when a database is opened.
pub fn all_streams() -> Vec<StreamSpec> {
    REGISTRY
        .iter()
        .flat_map(|p| p.streams.iter().copied())
        .collect()
}

/// The names of the providers the engine syncs, in registry order.
pub fn syncable() -> Vec<&'static str> {
    REGISTRY
        .iter()
        .filter(|p| p.syncs())
        .map(|p| p.name)
        .collect()
}

/// The image hosts of every provider, each once (the downloader's default allow-list).
pub fn image_hosts() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for h in REGISTRY.iter().flat_map(|p| p.image_hosts) {
        if !out.contains(h) {
            out.push(h);
        }
    }
    out
}

/// Every provider's default sync interval, in minutes.
pub fn intervals_minutes() -> impl Iterator<Item = (&'static str, u32)> {
    REGISTRY
        .iter()
        .filter(|p| p.syncs())
        .map(|p| (p.name, p.interval_minutes))
}

/// Parse a provider's config (without the engine's keys) or its credentials for the
/// connection `name` (empty: one not stored yet), never echoing a credential in the error.
pub fn parse<T: serde::de::DeserializeOwned>(
    name: &str,
    value: Value,
    what: &str,
) -> Result<T, ConnectorError> {
    serde_json::from_value(value).map_err(|e| {
        ConnectorError::Config(if name.is_empty() {
            format!("invalid {what}: {}", redacted(&e))
        } else {
            format!(
                "connection {name:?} has an invalid {what}: {}",
                redacted(&e)
            )
        })
    })
}

/// A serde error without the offending value (which may be a secret).
fn redacted(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.find(": ") {
        Some(i) if s.starts_with("invalid type") => s[..i].to_string(),
        _ => s,
    }
}

/// Serialize what a provider verified.
pub fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ConnectorError> {
    serde_json::to_value(v).map_err(|e| ConnectorError::Config(e.to_string()))
}

/// What `inlet connect` stores for typed flags (`from_flags`' last step).
pub fn input<A: serde::Serialize, B: serde::Serialize>(
    config: &A,
    credentials: &B,
    account: Option<String>,
) -> Result<Input, ConnectorError> {
    Ok(Input {
        config: to_value(config)?,
        credentials: to_value(credentials)?,
        account,
    })
}

/// A connector made from a typed config and typed credentials. Its registry `build` is
/// [`build_typed`] and its `verify` the frame [`verify_typed`] around one check, so a
/// provider folder writes neither the parsing nor the credentials hand-back again.
pub trait Typed: Connector + Sized + 'static {
    /// The config (`connections.config`, engine keys removed).
    type Config: serde::de::DeserializeOwned + serde::Serialize + Clone + Send + Sync + 'static;
    /// The credentials (stored sealed).
    type Credentials: serde::de::DeserializeOwned + serde::Serialize + Send + Sync + 'static;
    /// How error messages name the provider (`eBay`).
    const TITLE: &'static str;
    /// The connector for `config` and `creds`.
    fn from_parts(
        config: Self::Config,
        creds: &Self::Credentials,
        http: HttpConfig,
    ) -> Result<Self, ConnectorError>;
    /// The one cheap request that proves a new connection; returns the account when the
    /// provider names it, and may fill in what it learned in `config`.
    fn check<'a>(&'a self, config: &'a mut Self::Config) -> CheckFuture<'a>;
}

/// What [`Typed::check`] returns.
pub type CheckFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Option<String>, ConnectorError>> + Send + 'a>>;

fn parse_parts<C: Typed>(
    name: &str,
    config: Value,
    credentials: Value,
) -> Result<(C::Config, C::Credentials), ConnectorError> {
    Ok((
        parse(name, config, &format!("{} config", C::TITLE))?,
        parse(name, credentials, &format!("{} credentials", C::TITLE))?,
    ))
}

/// [`ProviderDef`]'s `build` for a [`Typed`] connector.
pub fn build_typed<C: Typed>(
    name: &str,
    config: Value,
    credentials: Value,
    http: HttpConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let (config, creds) = parse_parts::<C>(name, config, credentials)?;
    Ok(Box::new(C::from_parts(config, &creds, http)?))
}

/// [`ProviderDef`]'s `verify` for a [`Typed`] connector: parse, build, [`Typed::check`],
/// and hand back the credentials the connector holds afterwards — a token exchange while
/// checking may have rotated the refresh token, and the old one is then dead.
pub fn verify_typed<C: Typed>(config: Value, credentials: Value, http: HttpConfig) -> VerifyFuture {
    Box::pin(async move {
        let (mut cfg, creds) = parse_parts::<C>("", config, credentials)?;
        let conn = C::from_parts(cfg.clone(), &creds, http)?;
        let account = conn.check(&mut cfg).await?;
        let credentials = match conn.take_updated_credentials().await {
            Some(updated) => updated,
            None => to_value(&creds)?,
        };
        Ok(Verified {
            config: to_value(&cfg)?,
            credentials,
            account,
        })
    })
}

/// The config of type `T` with every default filled in.
pub fn defaults<T: serde::de::DeserializeOwned + serde::Serialize>() -> Value {
    serde_json::from_value::<T>(serde_json::json!({}))
        .ok()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or_else(|| serde_json::json!({}))
}

/// The schema of `T` and the schemas it refers to.
#[cfg(feature = "openapi")]
pub fn schema<T: utoipa::ToSchema + utoipa::PartialSchema>()
-> Vec<(String, utoipa::openapi::RefOr<utoipa::openapi::Schema>)> {
    let mut v = vec![(T::name().into_owned(), T::schema())];
    T::schemas(&mut v);
    v
}

/// The connector for a stored connection, given its opened credentials.
pub fn build(
    conn: &Connection,
    credentials: Value,
    http: HttpConfig,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let Some(def) = find(&conn.provider) else {
        return Err(ConnectorError::Config(format!(
            "connection {:?} uses provider {:?}, which this build does not support (supported: {})",
            conn.name,
            conn.provider,
            syncable().join(", ")
        )));
    };
    match def.kind {
        Kind::Sync { build, .. } => {
            build(&conn.name, provider_config(&conn.config), credentials, http)
        }
        Kind::Import => Err(ConnectorError::Config(format!(
            "connection {:?} is filled by imports: update it with `inlet import {} FILE --connection {}`",
            conn.name, def.name, conn.name
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags `inlet connect` adds to every provider's own.
    const COMMON_FLAGS: &[&str] = &["name", "workspace", "no-verify", "update", "help"];

    #[test]
    fn names_flags_and_tables_are_unique() {
        let mut names = Vec::new();
        let mut tables: Vec<&str> = Vec::new();
        for def in REGISTRY {
            assert!(!names.contains(&def.name), "{} registered twice", def.name);
            names.push(def.name);
            let mut flags: Vec<&str> = COMMON_FLAGS.to_vec();
            for p in def.params {
                assert!(!flags.contains(&p.flag), "{}: --{} twice", def.name, p.flag);
                flags.push(p.flag);
            }
            for t in def.tables() {
                assert!(!tables.contains(&t), "{}: table {t} is another's", def.name);
                tables.push(t);
            }
            if def.syncs() {
                assert!(def.interval_minutes > 0, "{}", def.name);
                assert!(!def.params.is_empty(), "{}", def.name);
            }
        }
    }

    const EXAMPLE_SPEC: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/examples/reddit-inbox.toml"
    );

    /// Every synced provider makes a config and credentials from its flags (defaults,
    /// and a value for each required, secret or environment-given flag; `rest` gets the
    /// documented example spec) that its own builder accepts,
    /// without sending a request.
    #[test]
    fn flags_make_a_connection_the_builder_accepts() {
        for def in REGISTRY.iter().filter(|d| d.syncs()) {
            let mut flags = Flags::default();
            for p in def.params {
                match p.default {
                    Some(d) => flags.set(p.flag, vec![d.to_string()]),
                    // `rest` reads its spec file: the documented example.
                    None if p.flag == "spec" => flags.set(p.flag, vec![EXAMPLE_SPEC.into()]),
                    None if p.required || p.secret || p.env.is_some() => {
                        flags.set(p.flag, vec!["x".into()])
                    }
                    None => {}
                }
            }
            let input = def
                .from_flags(&flags)
                .unwrap_or_else(|e| panic!("{}: {e}", def.name));
            let conn = Connection {
                id: 1,
                name: "c".into(),
                workspace: "default".into(),
                provider: def.name.into(),
                config: input.config,
                credentials: vec![],
                status: inlet_core::ConnectionStatus::Active,
                status_detail: None,
                created_at: inlet_core::Timestamp(0),
                updated_at: inlet_core::Timestamp(0),
            };
            build(&conn, input.credentials, HttpConfig::default())
                .unwrap_or_else(|e| panic!("{}: {e}", def.name));
        }
    }

    #[test]
    fn a_bad_flag_value_names_the_flag_and_import_only_providers_refuse_flags() {
        let github = find("github").expect("github");
        let mut flags = Flags::default();
        flags.set("token", vec!["t".into()]);
        flags.set("api-base", vec!["https://api.github.com".into()]);
        flags.set("per-page", vec!["many".into()]);
        let e = github.from_flags(&flags).expect_err("not a number");
        assert!(e.to_string().contains("--per-page \"many\""), "{e}");
        let tiktok = find("tiktok").expect("tiktok");
        assert!(!tiktok.syncs());
        let e = tiktok
            .from_flags(&Flags::default())
            .expect_err("import only");
        assert!(e.to_string().contains("inlet import tiktok"), "{e}");
        assert_eq!(github.credential_noun(), "token");
        assert_eq!(
            find("reddit").expect("reddit").credential_noun(),
            "credentials"
        );
    }
}
