//! The provider registry is the one list of providers: every surface that names
//! providers (the CLI's `connect`, the API, its OpenAPI document, the scheduler, the
//! docs, the database schema) is checked against it, provider by provider. A made-up
//! provider that no surface knows shows every check failing.

mod common;

use common::inlet;
use inlet_connectors::provider::{Flags, Input, Kind, Param, ProviderDef, REGISTRY};
use inlet_core::{ColType, ConnectorError, StreamSpec};
use inlet_engine::scheduler::ScheduleConfig;
use serde_json::Value;
use std::process::{Command, Output};

fn output(mut c: Command) -> Output {
    c.output().expect("run inlet")
}

fn read_doc(name: &str) -> String {
    let path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// What every surface says about providers, read once.
struct Surfaces {
    openapi: Value,
    schedule: ScheduleConfig,
    cli_doc: String,
    tables_doc: String,
}

impl Surfaces {
    fn read() -> Surfaces {
        Surfaces {
            openapi: inlet_server::openapi::document(),
            schedule: inlet_server::ServeOptions::default().schedule,
            cli_doc: read_doc("cli.md"),
            tables_doc: read_doc("tables.md"),
        }
    }
}

/// `inlet connect <name> --help` lists every parameter of the provider.
fn cli_misses(def: &ProviderDef) -> Option<String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = inlet(dir.path());
    c.args(["connect", def.name, "--help"]);
    let o = output(c);
    let help = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        return Some(format!("`inlet connect {}` does not exist", def.name));
    }
    let missing: Vec<&str> = def
        .params
        .iter()
        .map(|p| p.flag)
        .filter(|f| !help.contains(&format!("--{f} ")))
        .collect();
    (!missing.is_empty()).then(|| format!("`inlet connect {}` lacks {missing:?}", def.name))
}

/// Providers the API deliberately does not create (the server still syncs and lists
/// them): `rest`, whose spec names hosts the API's override checks cannot vet.
const CLI_ONLY: &[&str] = &[inlet_connectors::rest::NAME];

/// The API accepts the provider (the list `POST /v1/connections` checks).
fn api_misses(def: &ProviderDef) -> Option<String> {
    let known = inlet_server::providers::get(def.name).is_some() || CLI_ONLY.contains(&def.name);
    (!known).then(|| format!("the API does not accept {}", def.name))
}

/// `/openapi.json` names the provider in the connection's provider enum and describes
/// its config and credentials in `NewConnection`.
fn openapi_misses(def: &ProviderDef, doc: &Value) -> Option<String> {
    let schemas = &doc["components"]["schemas"];
    let listed = schemas["Connection"]["properties"]["provider"]["enum"]
        .as_array()
        .is_some_and(|a| a.iter().any(|v| v == def.name));
    let shaped = schemas["NewConnection"]["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["properties"]["provider"]["enum"][0] == def.name)
        .is_some_and(|s| {
            ["config", "credentials"].iter().all(|part| {
                s["properties"][part]["$ref"]
                    .as_str()
                    .and_then(|r| r.rsplit('/').next())
                    .is_some_and(|name| schemas[name].is_object())
            })
        });
    match (listed, shaped || CLI_ONLY.contains(&def.name)) {
        (true, true) => None,
        _ => Some(format!(
            "/openapi.json: {} listed {listed}, request schema {shaped}",
            def.name
        )),
    }
}

/// The scheduler has the provider's own interval.
fn scheduler_misses(def: &ProviderDef, schedule: &ScheduleConfig) -> Option<String> {
    let want = i64::from(def.interval_minutes) * 60_000;
    match schedule.intervals_ms.get(def.name) {
        Some(ms) if *ms == want => None,
        got => Some(format!(
            "the scheduler has {got:?} ms for {}, not {want}",
            def.name
        )),
    }
}

/// docs/cli.md has the provider's section naming every flag, and docs/tables.md every
/// table and column it writes.
fn docs_miss(def: &ProviderDef, s: &Surfaces) -> Vec<String> {
    let mut out = Vec::new();
    let heading = if def.syncs() {
        format!("\n## inlet connect {}\n", def.name)
    } else {
        format!("\n## inlet import {} ", def.name)
    };
    match s.cli_doc.split_once(&heading) {
        None => out.push(format!("docs/cli.md has no `{}`", heading.trim())),
        Some((_, rest)) => {
            let section = rest.split("\n## ").next().unwrap_or_default();
            for p in def.params {
                if !section.contains(&format!("`--{}", p.flag)) {
                    out.push(format!("docs/cli.md `{}`: --{}", heading.trim(), p.flag));
                }
            }
        }
    }
    out.extend(
        common::undocumented_columns(def.streams, &s.tables_doc)
            .into_iter()
            .map(|c| format!("docs/tables.md: {c}")),
    );
    out
}

/// Every surface that misses `def`.
fn misses(def: &ProviderDef, s: &Surfaces) -> Vec<String> {
    let mut out = Vec::new();
    if def.syncs() {
        out.extend(cli_misses(def));
        out.extend(api_misses(def));
        out.extend(openapi_misses(def, &s.openapi));
        out.extend(scheduler_misses(def, &s.schedule));
    }
    out.extend(docs_miss(def, s));
    out
}

#[test]
fn every_surface_knows_every_provider() {
    let s = Surfaces::read();
    let mut missing = Vec::new();
    for def in REGISTRY {
        missing.extend(misses(def, &s));
    }
    assert!(missing.is_empty(), "{missing:#?}");
    // The registry names the four providers this build has, once each.
    let names: Vec<&str> = REGISTRY.iter().map(|d| d.name).collect();
    for p in ["reddit", "github", "ebay", "tiktok"] {
        assert_eq!(names.iter().filter(|n| **n == p).count(), 1, "{names:?}");
    }
}

fn fake_build(
    _: &str,
    _: Value,
    _: Value,
    _: inlet_http::HttpConfig,
) -> Result<Box<dyn inlet_core::Connector>, ConnectorError> {
    Err(ConnectorError::Config("fake".into()))
}

fn fake_verify(
    _: Value,
    _: Value,
    _: inlet_http::HttpConfig,
) -> inlet_connectors::provider::VerifyFuture {
    Box::pin(async { Err(ConnectorError::Config("fake".into())) })
}

fn fake_flags(_: &Flags) -> Result<Input, ConnectorError> {
    Err(ConnectorError::Config("fake".into()))
}

static FAKE_STREAMS: [StreamSpec; 1] = [StreamSpec {
    name: "items",
    table: "fakeprov_items",
    doc: "made-up items",
    columns: &[inlet_core::Column {
        name: "fakeprov_title",
        ty: ColType::Text,
        doc: "a title",
    }],
    scope: None,
    stop: inlet_core::StopRule::Never,
    listing_cap: None,
    derived: None,
}];

/// A provider no surface knows (it is not in the registry).
static FAKE: ProviderDef = ProviderDef {
    name: "fakeprov",
    title: "Fakeprov",
    about: "A provider no surface knows.",
    streams: &FAKE_STREAMS,
    interval_minutes: 7,
    quota: None,
    rate_headers: None,
    image_hosts: &[],
    params: &[Param::new("fake-token", "A token.").secret().required()],
    default_config: || serde_json::json!({}),
    kind: Kind::Sync {
        build: fake_build,
        verify: fake_verify,
        from_flags: fake_flags,
    },
    api: None,
};

#[test]
fn a_provider_missing_from_every_surface_fails_every_check() {
    let s = Surfaces::read();
    assert!(cli_misses(&FAKE).is_some(), "CLI check");
    assert!(api_misses(&FAKE).is_some(), "API check");
    assert!(openapi_misses(&FAKE, &s.openapi).is_some(), "OpenAPI check");
    assert!(
        scheduler_misses(&FAKE, &s.schedule).is_some(),
        "scheduler check"
    );
    let docs = docs_miss(&FAKE, &s);
    assert_eq!(
        docs,
        vec![
            "docs/cli.md has no `## inlet connect fakeprov`",
            "docs/tables.md: fakeprov_items",
            "docs/tables.md: fakeprov_items.fakeprov_title",
        ],
        "docs check"
    );
    // A real provider's CLI with a flag it lacks, and a schedule without it, fail too.
    let reddit = inlet_connectors::provider::find("reddit").expect("reddit");
    let mut schedule = s.schedule.clone();
    schedule.intervals_ms.remove("reddit");
    assert!(scheduler_misses(reddit, &schedule).is_some());
    static MORE: [Param; 1] = [Param::new("no-such-flag", "Not a flag.")];
    let extra = ProviderDef {
        params: &MORE,
        ..copy(reddit)
    };
    assert!(cli_misses(&extra).is_some(), "a flag the CLI lacks");
    assert!(!docs_miss(&extra, &s).is_empty(), "a flag the docs lack");
}

/// A field-by-field copy (a definition is not `Clone`: it is meant to be one static).
fn copy(d: &ProviderDef) -> ProviderDef {
    ProviderDef {
        name: d.name,
        title: d.title,
        about: d.about,
        streams: d.streams,
        interval_minutes: d.interval_minutes,
        quota: d.quota,
        rate_headers: d.rate_headers,
        image_hosts: d.image_hosts,
        params: d.params,
        default_config: d.default_config,
        kind: d.kind,
        api: d.api,
    }
}

/// `inlet connect github` against a database the CLI makes, so the schema is what the
/// CLI sees (made by migrations, or from the specs when it opens).
async fn cli_database(db: &common::TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut c = inlet(dir.path());
    c.args(["--database-url", &db.url, "connect", "github"])
        .args(["--name", "g", "--token", "ghp_x", "--no-verify"]);
    common::ok(&common::run(c).await);
}

async fn columns(db: &common::TestDb, table: &str) -> Vec<(String, String)> {
    if db.url.starts_with("postgres") {
        let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let sql = "SELECT column_name::text, data_type::text FROM information_schema.columns \
                   WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position";
        let rows = client.query(sql, &[&table]).await.expect("query");
        rows.iter().map(|r| (r.get(0), r.get(1))).collect()
    } else {
        let c = rusqlite::Connection::open(&db.url).expect("open");
        let mut st = c
            .prepare("SELECT name, type FROM pragma_table_info(?1)")
            .expect("prepare");
        st.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }
}

/// Every table of every provider in the registry has exactly the columns its stream
/// spec gives (eBay's included), on both backends.
async fn tables_match_the_registry(db: &common::TestDb) {
    cli_database(db).await;
    let pg = db.url.starts_with("postgres");
    let ty = |t: ColType| match (pg, t) {
        (true, ColType::Text) => "text",
        (true, ColType::Int) => "bigint",
        (true, ColType::Float) => "double precision",
        (true, ColType::Bool) => "boolean",
        (true, ColType::Time) => "timestamp with time zone",
        (false, ColType::Text | ColType::Time) => "TEXT",
        (false, ColType::Int | ColType::Bool) => "INTEGER",
        (false, ColType::Float) => "REAL",
    };
    let (int, text, json, blob) = if pg {
        ("bigint", "text", "jsonb", "bytea")
    } else {
        ("INTEGER", "TEXT", "TEXT", "BLOB")
    };
    let time = ty(ColType::Time);
    let key = || vec![("connection_id".to_string(), int), ("id".into(), text)];
    let mut checked = Vec::new();
    for def in REGISTRY {
        for spec in def.streams {
            let mut want = key();
            want.extend(spec.columns.iter().map(|c| (c.name.to_string(), ty(c.ty))));
            want.extend([
                ("raw".into(), json),
                ("content_hash".into(), blob),
                ("first_seen_at".into(), time),
                ("updated_at".into(), time),
                ("deleted_at".into(), time),
            ]);
            let want: Vec<(String, String)> =
                want.into_iter().map(|(a, b)| (a, b.to_string())).collect();
            assert_eq!(
                columns(db, spec.table).await,
                want,
                "{} table {} drifted from its stream spec",
                def.name,
                spec.table
            );
            checked.push(spec.table);
            if let Some(d) = spec.derived {
                let mut want = key();
                want.extend(
                    d.columns
                        .iter()
                        .map(|c| (c.column.name.to_string(), ty(c.column.ty))),
                );
                want.push(("updated_at".into(), time));
                let want: Vec<(String, String)> =
                    want.into_iter().map(|(a, b)| (a, b.to_string())).collect();
                assert_eq!(
                    columns(db, d.table).await,
                    want,
                    "{} derived table {} drifted from its spec",
                    def.name,
                    d.table
                );
            }
        }
    }
    for t in ["ebay_conversations", "ebay_messages", "github_stars"] {
        assert!(checked.contains(&t), "{t} checked");
    }
}

both_backends!(schema_drift, tables_match_the_registry);

/// One database-URL parser: a URL no backend takes is refused by every command with
/// the same words, before anything is verified or written.
#[test]
fn every_command_refuses_a_bad_database_url_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let mut c = inlet(dir.path());
        c.args(["--database-url", "mysql:x"]).args(args);
        let o = output(c);
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).trim().to_string()
    };
    let status = run(&["status"]);
    // Without --no-verify: the URL is refused before GitHub is asked.
    let connect = run(&[
        "connect",
        "github",
        "--name",
        "g",
        "--token",
        "ghp_x",
        "--api-base",
        "http://127.0.0.1:9",
    ]);
    let sync = run(&["sync"]);
    assert!(
        status.contains("unsupported database URL scheme \"mysql\""),
        "{status}"
    );
    assert_eq!(status, connect);
    assert_eq!(status, sync);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
}
