//! What the API knows about each provider it accepts: the defaults of its config (whose
//! URLs are the hosts a connection may reach without the operator's leave) and, for the
//! OpenAPI document, the schemas of its config and credentials. Every entry comes from
//! the provider's definition in [`inlet_connectors::provider::REGISTRY`]: the providers
//! the engine syncs and that describe themselves to the API.

use inlet_connectors::provider::{Kind, REGISTRY};
use serde_json::Value;
use utoipa::openapi::{RefOr, Schema};

/// One provider as the API describes it.
pub struct ProviderApi {
    /// Its name (`provider` in a new connection).
    pub name: &'static str,
    /// Its config with every default filled in.
    pub default_config: fn() -> Value,
    /// Its config's schema (name, schema) first, then the schemas it refers to.
    pub config: fn() -> Vec<(String, RefOr<Schema>)>,
    /// Its credentials' schema first, then the schemas they refer to.
    pub credentials: fn() -> Vec<(String, RefOr<Schema>)>,
}

/// Every provider the API accepts, in registry order.
pub fn all() -> impl Iterator<Item = ProviderApi> {
    REGISTRY.iter().filter_map(|p| match (p.kind, p.api) {
        (Kind::Sync { .. }, Some(api)) => Some(ProviderApi {
            name: p.name,
            default_config: p.default_config,
            config: api.config,
            credentials: api.credentials,
        }),
        _ => None,
    })
}

/// The names of the providers the API accepts.
pub fn names() -> Vec<&'static str> {
    all().map(|p| p.name).collect()
}

/// The entry of a provider.
pub fn get(name: &str) -> Option<ProviderApi> {
    all().find(|p| p.name == name)
}

/// The host of every http(s) URL among the string values of `v` (nested included).
pub fn url_hosts(v: &Value, out: &mut Vec<(String, String)>, path: &str) {
    match v {
        Value::String(s) => {
            let lower = s.trim().to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                // The parser the connectors use, so the host checked is the host fetched.
                let host = reqwest::Url::parse(s.trim())
                    .ok()
                    .and_then(|u| {
                        u.host_str()
                            .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                    })
                    .unwrap_or_default();
                out.push((path.to_string(), host));
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                url_hosts(v, out, &p);
            }
        }
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                url_hosts(v, out, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

/// Refuse a config whose URLs point anywhere but the provider's own hosts (those of its
/// defaults) or a host the operator allowed (`--allow-override-host`): without this, an
/// API key holder could make the server fetch any address, an internal one included.
pub fn check_overrides(
    provider: &ProviderApi,
    config: &Value,
    allowed: &[String],
) -> Result<(), String> {
    let mut own = Vec::new();
    url_hosts(&(provider.default_config)(), &mut own, "");
    let mut asked = Vec::new();
    url_hosts(config, &mut asked, "");
    for (key, host) in asked {
        if host.is_empty() {
            return Err(format!("config.{key} is not a URL with a host"));
        }
        let ok = own.iter().any(|(_, h)| *h == host)
            || allowed.iter().any(|a| a.eq_ignore_ascii_case(&host));
        if !ok {
            return Err(format!(
                "config.{key} points at host {host:?}, which is not one of {}'s own hosts; \
                 the server's operator must allow it (inlet serve --allow-override-host {host}, \
                 or INLET_ALLOWED_OVERRIDE_HOSTS)",
                provider.name
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_provider_of_the_build_is_described() {
        // `rest` is the one provider the API does not create: a spec names hosts the
        // API's host checks cannot vet (connect it with `inlet connect rest`).
        let mut want = inlet_connectors::provider::syncable();
        want.retain(|p| *p != inlet_connectors::rest::NAME);
        assert_eq!(names(), want);
    }

    #[test]
    fn overrides_need_the_operators_leave() {
        let reddit = &get("reddit").expect("reddit");
        let local = json!({"api_base": "http://127.0.0.1:9/x", "token_url": "https://www.reddit.com/api/v1/access_token"});
        let err = check_overrides(reddit, &local, &[]).expect_err("foreign host refused");
        assert!(
            err.contains("config.api_base") && err.contains("127.0.0.1"),
            "{err}"
        );
        assert!(check_overrides(reddit, &local, &["127.0.0.1".into()]).is_ok());
        let metadata = json!({"token_url": "http://169.254.169.254/latest/meta-data"});
        assert!(check_overrides(reddit, &metadata, &["127.0.0.1".into()]).is_err());
        for tricky in [
            "http://oauth.reddit.com@evil.example/",
            "https://evil.example\t/",
            "HTTPS://EVIL.EXAMPLE/",
            "http://[::1]:8080/",
        ] {
            let c = json!({ "api_base": tricky });
            assert!(check_overrides(reddit, &c, &[]).is_err(), "{tricky}");
        }
        assert!(
            check_overrides(
                reddit,
                &json!({"api_base": "http://[::1]:8080/"}),
                &["::1".into()]
            )
            .is_ok()
        );
        let nested = json!({"http": {"proxy": "http://10.0.0.1/"}});
        assert!(check_overrides(reddit, &nested, &[]).is_err());
        assert!(check_overrides(reddit, &json!({"page_size": 50}), &[]).is_ok());
        let own = (reddit.default_config)();
        assert!(check_overrides(reddit, &own, &[]).is_ok(), "{own}");
        for p in all() {
            let mut hosts = Vec::new();
            url_hosts(&(p.default_config)(), &mut hosts, "");
            assert!(!hosts.is_empty(), "{} has default URLs", p.name);
        }
    }
}
