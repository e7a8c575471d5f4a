//! The OpenAPI 3.1 document served at `/openapi.json`, generated from the code: every
//! route is registered once with its `#[utoipa::path]` description ([`crate::api`]), so
//! the router and the document cannot list different routes; the providers, their config
//! and credential fields come from [`crate::providers`] (the connectors' own types), and
//! the enumerations from `inlet-core`. A test checks that the document lists exactly the
//! routes the server answers ([`ROUTES`]).

use crate::providers;
use inlet_core::{ConnectionStatus, RunMode, RunStatus, Trigger, WorkspaceStatus};
use serde_json::Value;
use std::sync::OnceLock;
use utoipa::openapi::schema::{Object, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{OpenApi, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

/// Every (method, path) the router serves, in OpenAPI path syntax. Kept by hand on
/// purpose: the tests send each of them to the server and compare them with the document.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/connections"),
    ("post", "/v1/connections"),
    ("get", "/v1/connections/{id}"),
    ("delete", "/v1/connections/{id}"),
    ("post", "/v1/connections/{id}/pause"),
    ("post", "/v1/connections/{id}/resume"),
    ("post", "/v1/connections/{id}/sync"),
    ("get", "/v1/connections/{id}/status"),
    ("post", "/v1/connections/{id}/refresh"),
    ("get", "/v1/connections/{id}/compare"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/{id}"),
    ("get", "/health"),
    ("get", "/v1/workspaces"),
    ("post", "/v1/workspaces"),
    ("get", "/v1/workspaces/{name}"),
    ("post", "/v1/workspaces/{name}/pause"),
    ("post", "/v1/workspaces/{name}/resume"),
    ("get", "/v1/scheduler/ticks"),
];

/// The document as served (built once).
pub fn document() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        serde_json::to_value(openapi()).unwrap_or_else(|e| {
            serde_json::json!({"openapi": "3.1.0", "info": {"title": "inlet", "version": env!("CARGO_PKG_VERSION"), "description": format!("the document could not be rendered: {e}")}, "paths": {}})
        })
    })
    .clone()
}

/// The document: the registered routes plus the shared parts.
pub fn openapi() -> OpenApi {
    let mut doc = crate::api::routes().into_openapi();
    // `security(())` marks a public route as `[{}]` ("no scheme needed"); say it plainly
    // as `[]`, which overrides the document-wide bearer requirement.
    for item in doc.paths.paths.values_mut() {
        for op in [&mut item.get, &mut item.post, &mut item.delete]
            .into_iter()
            .flatten()
        {
            if let Some(sec) = &mut op.security
                && sec.iter().all(|r| *r == SecurityRequirement::default())
            {
                sec.clear();
            }
        }
    }
    doc
}

/// The parts of the document that are not routes.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "inlet",
        description = "Keep a database you own in sync with Reddit, GitHub, eBay and other services. Every route except /healthz, /readyz and /health needs `Authorization: Bearer <key>` (the scheme is case-insensitive; make a key with `inlet apikey create`). Every error answer is JSON: {\"error\": \"...\"}."
    ),
    security(("bearer" = [])),
    components(schemas(ErrorBody, ConnectionDoc, ConnectionList, NewConnection, TriggeredDoc, SyncRequest, RefreshRequest, Deleted, RunList, RunDoc, WorkspaceDoc, WorkspaceList, NewWorkspace, WorkspaceDetail, WorkspaceConnection, TickSummaryDoc, ProviderTicksDoc, SchedulerTicks, HealthDoc)),
    modifiers(&Shared)
)]
pub struct ApiDoc;

struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut OpenApi) {
        doc.openapi = utoipa::openapi::OpenApiVersion::Version31;
        doc.info.version = env!("CARGO_PKG_VERSION").into();
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for p in providers::all() {
            for (name, schema) in (p.config)().into_iter().chain((p.credentials)()) {
                components.schemas.entry(name).or_insert(schema);
            }
        }
    }
}

fn string_enum(values: &[&str], description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .description(Some(description))
        .into()
}

fn nullable(t: Type) -> SchemaType {
    SchemaType::from_iter([t, Type::Null])
}

/// An error answer.
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)]
pub struct ErrorBody {
    /// What went wrong.
    error: String,
    /// The running run, when the error is about one (409 while a sync runs).
    run_id: Option<i64>,
}

/// A connection as the API shows it (never its credentials).
#[derive(ToSchema)]
#[schema(as = Connection)]
#[allow(dead_code)]
pub struct ConnectionDoc {
    /// Store-assigned id.
    id: i64,
    /// Unique name.
    name: String,
    /// Tenant / workspace.
    workspace: String,
    /// Provider.
    #[schema(schema_with = provider_names)]
    provider: String,
    /// Provider settings (see the provider's config schema).
    #[schema(value_type = Object)]
    config: Value,
    /// Whether it is synced.
    #[schema(schema_with = connection_status)]
    status: String,
    /// Why the status is what it is (e.g. the re-authentication message).
    status_detail: Option<String>,
    /// Created (RFC 3339, UTC).
    created_at: String,
    /// Last changed (RFC 3339, UTC).
    updated_at: String,
}

fn provider_names() -> RefOr<Schema> {
    // Every provider a stored connection may have: `rest` connections (made with the
    // CLI) are synced by the server too, though the API does not create them.
    let names = inlet_connectors::provider::syncable();
    string_enum(&names, "a provider this server syncs")
}

fn connection_status() -> RefOr<Schema> {
    string_enum(ConnectionStatus::VALUES, "whether the connection is synced")
}

fn run_mode() -> RefOr<Schema> {
    string_enum(RunMode::VALUES, "what the sync reads")
}

fn optional_run_mode() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(nullable(Type::String))
        .enum_values(Some(RunMode::VALUES.iter().copied()))
        .description(Some("what the sync reads (default delta)"))
        .into()
}

/// `GET /v1/connections`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct ConnectionList {
    /// Every connection.
    connections: Vec<ConnectionDoc>,
}

/// `POST /v1/connections`: one shape per provider, told apart by `provider`.
pub struct NewConnection;

impl PartialSchema for NewConnection {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "A new connection; `config` and `credentials` follow the provider's schemas. Credentials are sealed at rest and never returned. URLs in config must point at the provider's own hosts unless the operator allowed another (inlet serve --allow-override-host).",
        ));
        for p in providers::all() {
            let config = (p.config)().swap_remove(0).0;
            let creds = (p.credentials)().swap_remove(0).0;
            let shape = ObjectBuilder::new()
                .title(Some(p.name))
                .property("name", name_schema())
                .required("name")
                .property(
                    "workspace",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .default(Some("default".into())),
                )
                .property(
                    "provider",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([p.name])),
                )
                .required("provider")
                .property(
                    "config",
                    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(config)),
                )
                .property(
                    "credentials",
                    RefOr::Ref(utoipa::openapi::Ref::from_schema_name(creds)),
                )
                .required("credentials")
                .additional_properties(Some(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ));
            one_of = one_of.item(shape);
        }
        Schema::OneOf(one_of.build()).into()
    }
}

fn name_schema() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(200))
        .description(Some(
            "unique name; not a number (numbers address connections by id)",
        ))
        .build()
}

impl ToSchema for NewConnection {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        for p in providers::all() {
            schemas.extend((p.config)());
            schemas.extend((p.credentials)());
        }
    }
}

/// What a sync trigger did (202).
#[derive(ToSchema)]
#[schema(as = Triggered)]
#[allow(dead_code)]
pub struct TriggeredDoc {
    /// `started`: a new run; `coalesced`: one was running and a follow-up is queued;
    /// `queued`: a scheduled run is waiting for a worker and will read everything.
    #[schema(schema_with = trigger_status)]
    status: String,
    /// The run started or running (none when queued).
    run_id: Option<i64>,
    /// The connection's name.
    connection: String,
    /// Where to follow the run (`/v1/runs/{id}`).
    run: Option<String>,
}

fn trigger_status() -> RefOr<Schema> {
    string_enum(&["started", "coalesced", "queued"], "what the trigger did")
}

/// `POST /v1/connections/{id}/sync` body (optional).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SyncRequest {
    /// Delta (default), full or reconcile.
    #[schema(schema_with = optional_run_mode)]
    mode: Option<String>,
}

/// `POST /v1/connections/{id}/refresh` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RefreshRequest {
    /// What to re-fetch, e.g. `conversation`.
    entity: String,
    /// Its provider id.
    id: String,
}

/// `DELETE /v1/connections/{id}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Deleted {
    /// The connection's name.
    deleted: String,
    /// `kept` (credentials erased, rows kept) or `deleted`.
    data: String,
}

/// One sync run with its counters.
#[derive(ToSchema)]
#[schema(as = Run)]
#[allow(dead_code)]
pub struct RunDoc {
    /// Run id.
    id: i64,
    /// The connection's id.
    connection_id: i64,
    /// Mode.
    #[schema(schema_with = run_mode)]
    mode: String,
    /// What started it.
    #[schema(schema_with = run_trigger)]
    trigger: String,
    /// How it ended (or `running`).
    #[schema(schema_with = run_status)]
    status: String,
    /// Started (RFC 3339, UTC).
    started_at: String,
    /// Finished (RFC 3339, UTC).
    finished_at: Option<String>,
    /// Counters: fetched, inserted, updated, unchanged, deleted, requests, retries, ...
    #[schema(value_type = Object)]
    stats: Value,
    /// Per-stream counters and outcome.
    #[schema(value_type = Object)]
    streams: Value,
    /// Why it failed or is partial.
    error: Option<String>,
    /// A `waiting` run: when the provider's rate limit or quota frees up (RFC 3339, UTC).
    waiting_until: Option<String>,
}

fn run_trigger() -> RefOr<Schema> {
    string_enum(Trigger::VALUES, "what started the run")
}

fn run_status() -> RefOr<Schema> {
    string_enum(RunStatus::VALUES, "how the run ended")
}

/// `GET /v1/runs`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct RunList {
    /// Newest first.
    runs: Vec<RunDoc>,
}

/// A workspace (tenant): it owns the connections whose `workspace` is its name.
#[derive(ToSchema)]
#[schema(as = Workspace)]
#[allow(dead_code)]
pub struct WorkspaceDoc {
    /// Store-assigned id.
    id: i64,
    /// Unique name.
    name: String,
    /// `paused`: none of its connections is scheduled.
    #[schema(schema_with = workspace_status)]
    status: String,
    /// Created (RFC 3339, UTC).
    created_at: String,
    /// Last changed (RFC 3339, UTC).
    updated_at: String,
}

fn workspace_status() -> RefOr<Schema> {
    string_enum(
        WorkspaceStatus::VALUES,
        "whether the workspace's connections are scheduled",
    )
}

/// `GET /v1/workspaces`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkspaceList {
    /// Every workspace, by name.
    workspaces: Vec<WorkspaceDoc>,
}

/// `POST /v1/workspaces` body.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct NewWorkspace {
    /// Unique name: 1 to 200 characters, no control characters, no white space at
    /// either end.
    name: String,
}

/// A connection of a workspace with its last run.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkspaceConnection {
    /// The connection.
    connection: ConnectionDoc,
    /// Its newest run (none yet: null).
    last_run: Option<RunDoc>,
}

/// `GET /v1/workspaces/{name}`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct WorkspaceDetail {
    /// The workspace.
    workspace: WorkspaceDoc,
    /// Its connections, by id.
    connections: Vec<WorkspaceConnection>,
}

/// One provider's part of one scheduler tick.
#[derive(ToSchema)]
#[schema(as = TickSummary)]
#[allow(dead_code)]
pub struct TickSummaryDoc {
    /// `success`: the tick started runs of the provider (counted once the last ended);
    /// `skipped`: none was due.
    #[schema(schema_with = tick_status)]
    status: String,
    /// Records fetched by the runs the tick started.
    total_messages: u64,
    /// Workspaces whose runs of the tick all succeeded.
    successful_workspaces: u64,
    /// Workspaces with at least one failed run in the tick.
    failed_workspaces: u64,
}

fn tick_status() -> RefOr<Schema> {
    string_enum(&["success", "skipped"], "whether the tick started runs")
}

/// The tick summaries of one provider.
#[derive(ToSchema)]
#[schema(as = ProviderTicks)]
#[allow(dead_code)]
pub struct ProviderTicksDoc {
    /// The most recent summary.
    last: Option<TickSummaryDoc>,
    /// When that tick ran (RFC 3339, UTC).
    last_tick_at: Option<String>,
    /// The most recent summary with status `success`.
    last_success: Option<TickSummaryDoc>,
    /// When that tick ran (RFC 3339, UTC).
    last_success_tick_at: Option<String>,
    /// Summaries with status `success` since the server started.
    ticks_success: u64,
    /// Summaries with status `skipped` since the server started.
    ticks_skipped: u64,
    /// Sum of `total_messages`.
    messages: u64,
    /// Sum of `successful_workspaces`.
    successful_workspaces: u64,
    /// Sum of `failed_workspaces`.
    failed_workspaces: u64,
}

/// `GET /v1/scheduler/ticks`.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct SchedulerTicks {
    /// `running`, or `disabled` (inlet serve --no-scheduler).
    scheduler: String,
    /// Per provider.
    providers: std::collections::BTreeMap<String, ProviderTicksDoc>,
}

/// `GET /health`.
#[derive(ToSchema)]
#[schema(as = Health)]
#[allow(dead_code)]
pub struct HealthDoc {
    /// `healthy` or `unhealthy`.
    status: String,
    /// The server's clock (RFC 3339, UTC).
    timestamp: String,
    /// Always `sync_engine`.
    service: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use inlet_core::{Connection, Run, RunStats, Timestamp};

    fn properties(doc: &Value, schema: &str) -> Vec<String> {
        let mut v: Vec<String> = doc["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("{schema} has properties"))
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    fn keys(v: Value) -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    }

    #[test]
    fn shown_shapes_match_what_the_server_serializes() {
        let doc = document();
        let conn = Connection {
            id: 1,
            name: "n".into(),
            workspace: "w".into(),
            provider: "reddit".into(),
            config: serde_json::json!({}),
            credentials: vec![1],
            status: ConnectionStatus::Active,
            status_detail: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        assert_eq!(
            properties(&doc, "Connection"),
            keys(serde_json::to_value(&conn).expect("json"))
        );
        let run = Run {
            id: 1,
            connection_id: 1,
            mode: RunMode::Delta,
            trigger: Trigger::Api,
            status: RunStatus::Success,
            started_at: Timestamp(0),
            finished_at: None,
            stats: RunStats::default(),
            streams: Default::default(),
            error: None,
            waiting_until: None,
        };
        assert_eq!(
            properties(&doc, "Run"),
            keys(serde_json::to_value(&run).expect("json"))
        );
        let ws = inlet_core::Workspace {
            id: 1,
            name: "w".into(),
            status: WorkspaceStatus::Active,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        };
        assert_eq!(
            properties(&doc, "Workspace"),
            keys(serde_json::to_value(&ws).expect("json"))
        );
        let summary = inlet_engine::scheduler::TickSummary {
            status: inlet_engine::scheduler::TickStatus::Skipped,
            total_messages: 0,
            successful_workspaces: 0,
            failed_workspaces: 0,
        };
        assert_eq!(
            properties(&doc, "TickSummary"),
            keys(serde_json::to_value(summary).expect("json"))
        );
        assert_eq!(
            properties(&doc, "ProviderTicks"),
            keys(
                serde_json::to_value(inlet_engine::scheduler::ProviderTicks::default())
                    .expect("json")
            )
        );
        assert_eq!(
            doc["paths"]["/health"]["get"]["security"],
            serde_json::json!([])
        );
    }

    #[test]
    fn every_provider_appears_with_its_fields() {
        let doc = document();
        let shapes = doc["components"]["schemas"]["NewConnection"]["oneOf"]
            .as_array()
            .expect("oneOf")
            .clone();
        assert_eq!(shapes.len(), providers::names().len());
        for (p, shape) in providers::names().iter().zip(&shapes) {
            assert_eq!(shape["properties"]["provider"]["enum"][0], *p);
            let def = inlet_connectors::provider::find(p).expect("registered");
            for part in ["config", "credentials"] {
                let r = shape["properties"][part]["$ref"].as_str().expect("ref");
                let name = r.rsplit('/').next().expect("name");
                let fields = properties(&doc, name);
                assert!(!fields.is_empty(), "{p} {part}");
                if part == "credentials" {
                    // Every secret `inlet connect` takes is a credential field
                    // (`refresh_token` of Reddit and eBay, GitHub's `token`).
                    for secret in def.params.iter().filter(|x| x.secret) {
                        let field = secret.flag.replace('-', "_");
                        assert!(fields.contains(&field), "{p} {field}: {fields:?}");
                    }
                    let named = match *p {
                        "github" => Some("token"),
                        "reddit" | "ebay" => Some("refresh_token"),
                        _ => None,
                    };
                    if let Some(named) = named {
                        assert!(fields.iter().any(|f| f == named), "{p}: {fields:?}");
                    }
                } else if (def.default_config)().get("api_base").is_some() {
                    assert!(fields.iter().any(|f| f == "api_base"), "{p}: {fields:?}");
                }
            }
        }
        let create = &doc["paths"]["/v1/connections"]["post"];
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/NewConnection"
        );
        assert_eq!(
            create["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Connection",
            "the 201 answer has a schema"
        );
        assert_eq!(
            doc["paths"]["/healthz"]["get"]["security"],
            serde_json::json!([])
        );
        assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
        let status = &doc["components"]["schemas"]["Connection"]["properties"]["provider"]["enum"];
        assert_eq!(
            status,
            &serde_json::json!(inlet_connectors::provider::syncable())
        );
    }
}
