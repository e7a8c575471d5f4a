//! `inlet connect <provider>`: one subcommand per provider the registry syncs, its flags
//! made from the provider's [`Param`]s. The provider turns the flags into its config and
//! credentials and verifies them; this file only parses, checks the name and stores.

use crate::app;
use crate::output::Output;
use crate::settings::Settings;
use anyhow::{Context, Result};
use clap::builder::PossibleValuesParser;
use clap::{Arg, ArgAction, ArgMatches, Command, FromArgMatches, Subcommand};
use inlet_connectors::provider::{self, Flags, Param, ProviderDef};
use inlet_http::HttpConfig;
use serde_json::json;
use std::process::ExitCode;

/// How long `inlet connect` keeps trying to verify credentials, rate-limit waits included.
pub const CONNECT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// HTTP settings for verifying credentials in `inlet connect`: a person is waiting, so a
/// few quick retries on faults, not a sync's patience; waits the provider asks for
/// (`Retry-After`) are honoured as everywhere, up to [`CONNECT_DEADLINE`].
pub fn connect_http() -> HttpConfig {
    HttpConfig {
        retry: inlet_http::RetryPolicy {
            max_attempts: 5,
            deadline: CONNECT_DEADLINE,
            ..Default::default()
        },
        ..HttpConfig::default()
    }
}

/// The context of a failed verification in `inlet connect` (`what`: `credentials`, or
/// the one credential's name, like `token`).
pub fn verify_failed(what: &str, provider: &str) -> String {
    format!(
        "could not verify the {what} with {provider} (rate-limit waits it asks for are honoured for up to {} s)",
        CONNECT_DEADLINE.as_secs()
    )
}

/// `inlet connect <provider> ...`, parsed.
#[derive(Debug)]
pub struct ConnectProvider {
    /// The provider.
    pub def: &'static ProviderDef,
    /// `--name`.
    pub name: String,
    /// `--workspace`.
    pub workspace: String,
    /// `--no-verify`.
    pub no_verify: bool,
    /// `--update`.
    pub update: bool,
    /// The provider's own flags.
    pub flags: Flags,
}

/// The subcommand of `def`: the flags every provider has, then the provider's own.
pub fn command(def: &'static ProviderDef) -> Command {
    let mut c = Command::new(def.name)
        .about(def.about)
        .arg(
            Arg::new("name")
                .long("name")
                .required(true)
                .help("A unique name for the connection."),
        )
        .arg(
            Arg::new("workspace")
                .long("workspace")
                .default_value("default")
                .help(
                    "Workspace (tenant) the connection belongs to; created (active) with it when it does not exist yet.",
                ),
        );
    for p in def.params {
        c = c.arg(flag(p));
    }
    c.arg(
        Arg::new("no-verify")
            .long("no-verify")
            .action(ArgAction::SetTrue)
            .help("Store without checking the credentials against the provider first."),
    )
    .arg(
        Arg::new("update")
            .long("update")
            .action(ArgAction::SetTrue)
            .help(
                "Replace the credentials of an existing connection of this name (re-authenticate).",
            ),
    )
}

/// The clap argument of one parameter.
fn flag(p: &'static Param) -> Arg {
    let mut a = Arg::new(p.flag).long(p.flag).help(p.help);
    if let Some(var) = p.env {
        a = a.env(var).hide_env_values(p.secret);
    }
    if let Some(d) = p.default {
        a = a.default_value(d);
    }
    if p.required {
        a = a.required(true);
    }
    a = a.action(if p.repeat {
        ArgAction::Append
    } else {
        ArgAction::Set
    });
    if !p.values.is_empty() {
        a = a.value_parser(PossibleValuesParser::new(p.values.iter().copied()));
    }
    a
}

impl FromArgMatches for ConnectProvider {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, sub)) = m.subcommand() else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingSubcommand,
                "name a provider: inlet connect <provider>\n",
            ));
        };
        let Some(def) = provider::find(name).filter(|d| d.syncs()) else {
            return Err(clap::Error::raw(
                clap::error::ErrorKind::InvalidSubcommand,
                format!("unknown provider {name:?}\n"),
            ));
        };
        let one = |id: &str| sub.get_one::<String>(id).cloned();
        let mut flags = Flags::default();
        for p in def.params {
            if let Some(values) = sub.get_many::<String>(p.flag) {
                flags.set(p.flag, values.cloned().collect());
            }
        }
        Ok(ConnectProvider {
            def,
            name: one("name").unwrap_or_default(),
            workspace: one("workspace").unwrap_or_else(|| inlet_core::DEFAULT_WORKSPACE.into()),
            no_verify: sub.get_flag("no-verify"),
            update: sub.get_flag("update"),
            flags,
        })
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Subcommand for ConnectProvider {
    fn augment_subcommands(cmd: Command) -> Command {
        cmd.subcommands(
            provider::REGISTRY
                .iter()
                .copied()
                .filter(|d| d.syncs())
                .map(command),
        )
        .subcommand_required(true)
    }

    fn augment_subcommands_for_update(cmd: Command) -> Command {
        Self::augment_subcommands(cmd)
    }

    fn has_subcommand(name: &str) -> bool {
        provider::find(name).is_some_and(|d| d.syncs())
    }
}

/// `inlet connect ...`: the provider makes its config and credentials from the flags
/// and verifies them, then the connection is written; a failure writes nothing.
pub async fn connect(settings: &Settings, a: ConnectProvider, out: &Output) -> Result<ExitCode> {
    let def = a.def;
    // The database URL and the name rule are checked before anything is verified or
    // written, with the words every command uses.
    crate::settings::target(&settings.database_url)?;
    if !a.update {
        app::check_name(&a.name)?;
        crate::workspace::check_for_connect(settings, &a.workspace, out).await?;
    }
    let mut input = def.from_flags(&a.flags)?;
    if !a.no_verify {
        let verified = def
            .verify(input.config, input.credentials, connect_http())
            .await
            .with_context(|| verify_failed(&def.credential_noun(), def.title))?;
        input.config = verified.config;
        input.credentials = verified.credentials;
        input.account = verified.account.or(input.account);
    }
    if !a.update {
        crate::rest_cmd::ensure_tables(settings, def.name, &input.config).await?;
    }
    let (store, conn) = app::store_connection(
        settings,
        app::NewVerified {
            name: &a.name,
            workspace: a.workspace,
            provider: def.name,
            config: input.config,
            credentials: input.credentials,
            update: a.update,
        },
    )
    .await?;
    let account = input.account;
    out.emit(
        // `username` is the account's older name, kept for scripts reading it.
        &json!({"connection": conn.name, "id": conn.id, "provider": def.name,
                "verified": !a.no_verify, "account": account, "username": account,
                "database": store.location()}),
        || {
            format!(
                "Connected {:?} (id {}) to {}{}{}; stored in {}.",
                conn.name,
                conn.id,
                def.title,
                account
                    .as_deref()
                    .map(|who| format!(" as {who}"))
                    .unwrap_or_default(),
                if a.no_verify { " (not verified)" } else { "" },
                store.location()
            )
        },
    );
    Ok(ExitCode::SUCCESS)
}
