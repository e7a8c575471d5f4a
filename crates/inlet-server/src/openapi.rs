//! The OpenAPI 3.1 document served at `/openapi.json`, written by hand. A test checks
//! that it lists exactly the routes the router serves ([`ROUTES`]).

use serde_json::{Value, json};

/// Every (method, path) the router serves, in OpenAPI path syntax.
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
];

fn op(summary: &str, ok: &str, extra: Value) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            ok: {"description": "OK", "content": {"application/json": {}}},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "404": {"$ref": "#/components/responses/Error"},
        }
    });
    if let (Some(o), Some(e)) = (o.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if k == "responses" {
                if let (Some(r), Some(more)) = (
                    o.get_mut("responses").and_then(Value::as_object_mut),
                    v.as_object(),
                ) {
                    for (code, resp) in more {
                        r.insert(code.clone(), resp.clone());
                    }
                }
            } else {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    o
}

fn id_param() -> Value {
    json!([{"name": "id", "in": "path", "required": true, "description": "connection name or numeric id", "schema": {"type": "string"}}])
}

fn err(desc: &str) -> Value {
    json!({"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document.
pub fn document() -> Value {
    let public = json!({"security": []});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "inlet",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Keep a database you own in sync with Reddit and other services. Every route except /healthz and /readyz needs `Authorization: Bearer <key>` (make one with `inlet apikey create`). Errors are {\"error\": \"...\"}."
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}, "run_id": {"type": ["integer", "null"]}}},
                "Connection": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "name": {"type": "string"}, "workspace": {"type": "string"},
                    "provider": {"type": "string"}, "config": {"type": "object"},
                    "status": {"enum": ["active", "paused", "needs_reauth", "failing"]},
                    "status_detail": {"type": ["string", "null"]},
                    "created_at": {"type": "string"}, "updated_at": {"type": "string"}}},
                "NewConnection": {"type": "object", "required": ["name", "provider", "credentials"], "properties": {
                    "name": {"type": "string"}, "workspace": {"type": "string", "default": "default"},
                    "provider": {"enum": ["reddit"]}, "config": {"type": "object"},
                    "credentials": {"type": "object", "description": "provider credentials; encrypted at rest, never returned"}}},
                "Triggered": {"type": "object", "properties": {
                    "status": {"enum": ["started", "coalesced", "queued"]}, "run_id": {"type": ["integer", "null"]},
                    "connection": {"type": "string"}, "run": {"type": ["string", "null"]}}},
            },
            "responses": {
                "Unauthorized": err("missing, invalid or revoked API key"),
                "Error": err("not found"),
            }
        },
        "paths": {
            "/healthz": {"get": op("Liveness: the process answers.", "200", public.clone())},
            "/readyz": {"get": op("Readiness: database reachable and scheduler alive.", "200",
                json!({"security": [], "responses": {"503": err("not ready")}}))},
            "/metrics": {"get": op("Prometheus metrics: runs by status, records, requests, retries, rate-limit waits, lag since last success per connection.", "200", json!({}))},
            "/openapi.json": {"get": op("This document.", "200", json!({}))},
            "/v1/connections": {
                "get": op("List connections (never their credentials).", "200", json!({})),
                "post": op("Create a connection; credentials are sealed at rest.", "201", json!({
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewConnection"}}}},
                    "responses": {"400": err("malformed body"), "409": err("name taken"), "413": err("body over 1 MiB"), "422": err("config or credentials unusable")}}))
            },
            "/v1/connections/{id}": {
                "get": op("Show a connection.", "200", json!({"parameters": id_param()})),
                "delete": op("Delete a connection with its data, or with ?keep_data=true erase its credentials and stop it while its rows stay.", "200", json!({
                    "parameters": [id_param()[0].clone(), {"name": "keep_data", "in": "query", "schema": {"type": "boolean", "default": false}}],
                    "responses": {"409": err("a sync is running")}}))
            },
            "/v1/connections/{id}/pause": {"post": op("Pause: no scheduled or triggered syncs.", "200", json!({"parameters": id_param()}))},
            "/v1/connections/{id}/resume": {"post": op("Resume a paused or failing connection.", "200", json!({"parameters": id_param(), "responses": {"409": err("needs re-authentication")}}))},
            "/v1/connections/{id}/sync": {"post": op("Trigger a sync; returns at once. While a sync runs the trigger is coalesced into one follow-up run (202 with the running run id), or refused with ?if_idle=true (409).", "202", json!({
                "parameters": [id_param()[0].clone(),
                    {"name": "if_idle", "in": "query", "schema": {"type": "boolean", "default": false}},
                    {"name": "mode", "in": "query", "schema": {"type": "string", "enum": ["delta", "full", "reconcile"]}}],
                "requestBody": {"required": false, "content": {"application/json": {"schema": {"type": "object", "properties": {"mode": {"type": "string", "enum": ["delta", "full", "reconcile"]}}}}}},
                "responses": {"400": err("bad mode or body"), "409": err("running (if_idle) or paused / needs_reauth"), "422": err("connector cannot be built"), "503": err("shutting down")}}))},
            "/v1/connections/{id}/status": {"get": op("Sync status: per-stream records and state, running run, queued follow-up, next scheduled time.", "200", json!({"parameters": id_param()}))},
            "/v1/connections/{id}/refresh": {"post": op("Re-fetch one entity now (e.g. one conversation).", "200", json!({
                "parameters": id_param(),
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["entity", "id"], "properties": {"entity": {"type": "string"}, "id": {"type": "string"}}}}}},
                "responses": {"400": err("malformed body"), "409": err("a sync is running"), "422": err("the provider cannot refresh this entity"), "502": err("provider error")}}))},
            "/v1/connections/{id}/compare": {"get": op("Records per stream in the store against the provider's count where the provider can count (source null with a reason otherwise).", "200", json!({"parameters": id_param()}))},
            "/v1/runs": {"get": op("Runs, newest first.", "200", json!({"parameters": [
                {"name": "connection", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50, "maximum": 1000}}]}))},
            "/v1/runs/{id}": {"get": op("One run with its stats.", "200", json!({"parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}}]}))},
        }
    })
}
