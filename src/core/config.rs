//! Centralised client configuration: typed options, the environment and a
//! librdkafka pass-through map, merged and validated in one place.

use crate::core::embedded;
use crate::core::error::{CoreError, Result};
use crate::core::logging::LogLevel;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use std::collections::BTreeMap;
use std::fmt;

/// Environment variables read by [`ClientSettings::resolve`], and the librdkafka
/// property each one sets. `KAFKA_BROKERS` and `KAFKA_CLIENT_ID` are handled apart.
pub const ENV_PROPERTIES: &[(&str, &str)] = &[
    ("KAFKA_SECURITY_PROTOCOL", "security.protocol"),
    ("KAFKA_SASL_MECHANISM", "sasl.mechanism"),
    ("KAFKA_SASL_USERNAME", "sasl.username"),
    ("KAFKA_SASL_PASSWORD", "sasl.password"),
    ("KAFKA_SSL_CA_LOCATION", "ssl.ca.location"),
    ("KAFKA_STATISTICS_INTERVAL_MS", "statistics.interval.ms"),
];

pub const ENV_BROKERS: &str = "KAFKA_BROKERS";
pub const ENV_CLIENT_ID: &str = "KAFKA_CLIENT_ID";

/// What a caller may set; anything left `None` falls back to the environment.
#[derive(Default, Clone)]
pub struct ClientOptions {
    pub brokers: Option<Vec<String>>,
    pub client_id: Option<String>,
    pub log_level: Option<LogLevel>,
    /// Any librdkafka property, applied over the role's defaults and the environment.
    pub properties: BTreeMap<String, String>,
}

/// Validated settings of one client, ready to become a librdkafka configuration.
#[derive(Clone)]
pub struct ClientSettings {
    pub brokers: Vec<String>,
    /// `brokers` is this process's embedded cluster (none were configured).
    pub embedded: bool,
    pub client_id: String,
    pub log_level: LogLevel,
    properties: BTreeMap<String, String>,
}

/// Properties whose values must never reach a log line or an error message.
pub fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "oauthbearer.config",
        "key.pem",
        "token",
        "jaas",
    ]
    .iter()
    .any(|marker| key.contains(marker))
}

const REDACTED: &str = "[redacted]";

impl ClientSettings {
    /// Merges, in rising precedence: `defaults` (the role's safe defaults), the
    /// environment (read through `env`), `options.properties`, then the typed options.
    pub fn resolve(
        options: &ClientOptions,
        defaults: &[(&str, &str)],
        default_client_id: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self> {
        let mut properties: BTreeMap<String, String> = defaults
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        for (variable, key) in ENV_PROPERTIES {
            if let Some(value) = env(variable).filter(|value| !value.trim().is_empty()) {
                properties.insert(key.to_string(), value);
            }
        }
        for (key, value) in &options.properties {
            if key.trim().is_empty() {
                return Err(CoreError::invalid_config(key, "property name is empty"));
            }
            properties.insert(key.clone(), value.clone());
        }

        let configured = match &options.brokers {
            Some(list) => Some(parse_broker_list(
                list.iter().map(String::as_str),
                "brokers",
            )?),
            None => match properties
                .remove("bootstrap.servers")
                .or_else(|| properties.remove("metadata.broker.list"))
            {
                Some(list) => Some(parse_broker_list(list.split(','), "bootstrap.servers")?),
                None => match env(ENV_BROKERS).filter(|list| !list.trim().is_empty()) {
                    Some(list) => Some(parse_broker_list(list.split(','), ENV_BROKERS)?),
                    None => None,
                },
            },
        };
        let brokers = match configured {
            Some(brokers) => brokers,
            // A production deployment that lost its broker setting must fail, not
            // quietly keep its messages in memory.
            None if env("NODE_ENV").as_deref() == Some("production") => {
                return Err(CoreError::invalid_config(
                    "brokers",
                    format!(
                        "no brokers configured: pass `brokers` or set {ENV_BROKERS} (e.g. localhost:9092); \
                         the embedded development cluster is disabled when NODE_ENV=production"
                    ),
                ))
            }
            None => vec![embedded::cluster()?.bootstrap_servers().to_string()],
        };
        let embedded = embedded::serves(&brokers);
        properties.remove("bootstrap.servers");
        properties.remove("metadata.broker.list");

        let client_id = match &options.client_id {
            Some(id) => id.clone(),
            None => properties
                .remove("client.id")
                .or_else(|| env(ENV_CLIENT_ID).filter(|id| !id.trim().is_empty()))
                .unwrap_or_else(|| default_client_id.to_string()),
        };
        properties.remove("client.id");
        validate_client_id(&client_id)?;

        let settings = ClientSettings {
            brokers,
            embedded,
            client_id,
            log_level: options.log_level.unwrap_or(LogLevel::Info),
            properties,
        };
        // librdkafka is the authority on property names and values: ask it now,
        // so a typo fails at construction rather than at first use.
        settings
            .to_rdkafka()
            .create_native_config()
            .map_err(|error| settings.config_error(&error))?;
        Ok(settings)
    }

    /// The librdkafka configuration for these settings.
    pub fn to_rdkafka(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", self.brokers.join(","));
        config.set("client.id", &self.client_id);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties.get(key).map(String::as_str)
    }

    /// All settings with secret values replaced, safe to log.
    pub fn redacted(&self) -> BTreeMap<String, String> {
        let mut all = redact_properties(&self.properties);
        all.insert("bootstrap.servers".into(), self.brokers.join(","));
        all.insert("client.id".into(), self.client_id.clone());
        all
    }

    /// Maps librdkafka's verdict on a property to an error naming the key,
    /// without echoing the value of a secret.
    pub fn config_error(&self, error: &KafkaError) -> CoreError {
        match error {
            KafkaError::ClientConfig(_, description, key, value) => {
                let mut reason = description.clone();
                if is_secret_property(key) && !value.is_empty() {
                    reason = reason.replace(value.as_str(), REDACTED);
                }
                CoreError::invalid_config(key.clone(), reason)
            }
            other => CoreError::invalid_config(
                "(client)",
                redact_text(&other.to_string(), &self.properties),
            ),
        }
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.redacted()).finish()
    }
}

pub fn redact_properties(properties: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    properties
        .iter()
        .map(|(key, value)| {
            let shown = if is_secret_property(key) {
                REDACTED.to_string()
            } else {
                value.clone()
            };
            (key.clone(), shown)
        })
        .collect()
}

/// Removes every secret value that occurs in `text`.
pub fn redact_text(text: &str, properties: &BTreeMap<String, String>) -> String {
    properties
        .iter()
        .filter(|(key, value)| is_secret_property(key) && !value.is_empty())
        .fold(text.to_string(), |text, (_, value)| {
            text.replace(value.as_str(), REDACTED)
        })
}

fn parse_broker_list<'a>(entries: impl Iterator<Item = &'a str>, key: &str) -> Result<Vec<String>> {
    let brokers: Vec<String> = entries
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| validate_broker(entry, key).map(|()| entry.to_string()))
        .collect::<Result<_>>()?;
    if brokers.is_empty() {
        return Err(CoreError::invalid_config(key, "the broker list is empty"));
    }
    Ok(brokers)
}

fn validate_broker(entry: &str, key: &str) -> Result<()> {
    let invalid = |why: &str| {
        CoreError::invalid_config(
            key,
            format!("`{entry}` is not a broker address ({why}); expected host:port"),
        )
    };
    let address = entry.split_once("://").map_or(entry, |(_, rest)| rest);
    let (host, port) = address.rsplit_once(':').ok_or_else(|| invalid("no port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("no host"));
    }
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '/')
    {
        return Err(invalid("bad character in host"));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => Err(invalid("port must be 1-65535")),
    }
}

fn validate_client_id(client_id: &str) -> Result<()> {
    if client_id.trim().is_empty() {
        return Err(CoreError::invalid_config("clientId", "must not be empty"));
    }
    if client_id.len() > 255 {
        return Err(CoreError::invalid_config(
            "clientId",
            "must be at most 255 bytes",
        ));
    }
    if client_id.chars().any(char::is_control) {
        return Err(CoreError::invalid_config(
            "clientId",
            "must not contain control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |key| map.get(key).cloned()
    }

    #[test]
    fn brokers_and_client_id_come_from_the_environment() {
        let env = env_of(&[
            ("KAFKA_BROKERS", "a:9092, b:9093"),
            ("KAFKA_CLIENT_ID", "movie-stream-producer"),
        ]);
        let settings =
            ClientSettings::resolve(&ClientOptions::default(), &[], "fallback", env).unwrap();
        assert_eq!(settings.brokers, vec!["a:9092", "b:9093"]);
        assert_eq!(settings.client_id, "movie-stream-producer");
    }

    #[test]
    fn explicit_options_override_the_environment() {
        let env = env_of(&[("KAFKA_BROKERS", "a:9092"), ("KAFKA_CLIENT_ID", "from-env")]);
        let options = ClientOptions {
            brokers: Some(vec!["c:1234".into()]),
            client_id: Some("explicit".into()),
            ..Default::default()
        };
        let settings = ClientSettings::resolve(&options, &[], "fallback", env).unwrap();
        assert_eq!(settings.brokers, vec!["c:1234"]);
        assert_eq!(settings.client_id, "explicit");
    }

    #[test]
    fn pass_through_properties_override_defaults() {
        let mut options = ClientOptions {
            brokers: Some(vec!["h:1".into()]),
            ..Default::default()
        };
        options.properties.insert("linger.ms".into(), "50".into());
        let settings = ClientSettings::resolve(
            &options,
            &[("linger.ms", "5"), ("acks", "all")],
            "x",
            |_| None,
        )
        .unwrap();
        assert_eq!(settings.property("linger.ms"), Some("50"));
        assert_eq!(settings.property("acks"), Some("all"));
    }

    #[test]
    fn missing_brokers_means_the_embedded_cluster() {
        let settings =
            ClientSettings::resolve(&ClientOptions::default(), &[], "x", |_| None).unwrap();
        assert!(settings.embedded);
        assert_eq!(
            settings.brokers,
            vec![embedded::cluster().unwrap().bootstrap_servers().to_string()]
        );
        let blank = env_of(&[("KAFKA_BROKERS", " ")]);
        assert!(
            ClientSettings::resolve(&ClientOptions::default(), &[], "x", blank)
                .unwrap()
                .embedded
        );
        let real = env_of(&[("KAFKA_BROKERS", "h:1")]);
        assert!(
            !ClientSettings::resolve(&ClientOptions::default(), &[], "x", real)
                .unwrap()
                .embedded
        );
    }

    #[test]
    fn missing_brokers_in_production_is_a_config_error_naming_the_key() {
        let production = env_of(&[("NODE_ENV", "production")]);
        let error = ClientSettings::resolve(&ClientOptions::default(), &[], "x", production)
            .err()
            .unwrap();
        assert_eq!(error.code(), "ERR_INVALID_CONFIG");
        assert!(error.to_string().contains("KAFKA_BROKERS"), "{error}");
    }

    #[test]
    fn malformed_brokers_are_rejected() {
        for bad in [
            "localhost",
            ":9092",
            "host:0",
            "host:99999",
            "ho st:1",
            "host:abc",
        ] {
            let options = ClientOptions {
                brokers: Some(vec![bad.into()]),
                ..Default::default()
            };
            let error = ClientSettings::resolve(&options, &[], "x", |_| None).err();
            assert!(
                matches!(error, Some(CoreError::InvalidConfig { .. })),
                "{bad} accepted"
            );
        }
        let options = ClientOptions {
            brokers: Some(vec!["[::1]:9092".into(), "SSL://h:9093".into()]),
            ..Default::default()
        };
        assert!(ClientSettings::resolve(&options, &[], "x", |_| None).is_ok());
    }

    #[test]
    fn unknown_or_invalid_properties_name_the_key() {
        let mut options = ClientOptions {
            brokers: Some(vec!["h:1".into()]),
            ..Default::default()
        };
        options
            .properties
            .insert("no.such.property".into(), "1".into());
        match ClientSettings::resolve(&options, &[], "x", |_| None) {
            Err(CoreError::InvalidConfig { key, .. }) => assert_eq!(key, "no.such.property"),
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
        let mut options = ClientOptions {
            brokers: Some(vec!["h:1".into()]),
            ..Default::default()
        };
        options.properties.insert("linger.ms".into(), "soon".into());
        match ClientSettings::resolve(&options, &[], "x", |_| None) {
            Err(CoreError::InvalidConfig { key, .. }) => assert_eq!(key, "linger.ms"),
            other => panic!("unexpected {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn secrets_never_appear_in_errors_or_debug_output() {
        let secret = "hunter2-very-secret";
        let env = env_of(&[
            ("KAFKA_BROKERS", "h:1"),
            ("KAFKA_SASL_PASSWORD", secret),
            ("KAFKA_SASL_USERNAME", "alice"),
        ]);
        let settings = ClientSettings::resolve(&ClientOptions::default(), &[], "x", &env).unwrap();
        assert_eq!(settings.property("sasl.password"), Some(secret));
        let shown = format!("{settings:?}");
        assert!(!shown.contains(secret), "{shown}");
        assert!(shown.contains("alice"));

        // An invalid value for a secret-bearing property must not be echoed back.
        let mut options = ClientOptions {
            brokers: Some(vec!["h:1".into()]),
            ..Default::default()
        };
        options
            .properties
            .insert("ssl.key.password".into(), secret.into());
        options
            .properties
            .insert("sasl.oauthbearer.config".into(), secret.into());
        options
            .properties
            .insert("enable.ssl.certificate.verification".into(), secret.into());
        let error = ClientSettings::resolve(&options, &[], "x", |_| None)
            .err()
            .unwrap();
        assert!(!error.to_string().contains(secret), "{error}");
        assert!(redact_text(&format!("x {secret} y"), &settings.properties).contains(REDACTED));
    }

    #[test]
    fn bootstrap_servers_in_the_pass_through_map_is_honoured() {
        let mut options = ClientOptions::default();
        options
            .properties
            .insert("bootstrap.servers".into(), "x:1,y:2".into());
        let settings = ClientSettings::resolve(&options, &[], "x", |_| None).unwrap();
        assert_eq!(settings.brokers, vec!["x:1", "y:2"]);
        assert!(settings.property("bootstrap.servers").is_none());
    }
}
