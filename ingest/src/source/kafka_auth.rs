//! How a Kafka source authenticates to MSK: the three client authentication schemes MSK
//! offers (TLS with an optional client certificate, SASL/SCRAM-SHA-512, IAM) as typed settings
//! that become librdkafka options, and the IAM token (a presigned `kafka-cluster:Connect`
//! URL, SASL/OAUTHBEARER) signed with credentials from the standard AWS chain.
//!
//! Secrets never sit in the config file: the SCRAM password and a key's passphrase are read
//! from environment variables the config names, and IAM credentials come from the AWS chain.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use rdkafka::client::OAuthToken;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::ConsumerContext;
use rdkafka::ClientContext;
use serde::Deserialize;

/// How long an IAM token is valid (what AWS's own signers use).
const IAM_EXPIRY: Duration = Duration::from_secs(900);

/// `[sources.kafka.security]`: TLS and SASL for a Kafka source.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KafkaSecurity {
    /// `plaintext`, `tls`, `sasl_plaintext` or `sasl_tls` (default: `plaintext`, or `sasl_tls`
    /// when `sasl` is set).
    pub protocol: Option<Protocol>,
    /// PEM file of the CA that signed the brokers' certificates (default: the system's).
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for mutual TLS (MSK "TLS" client authentication).
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Environment variable holding `key_file`'s passphrase.
    pub key_password_env: Option<String>,
    /// `scram-sha-512` (MSK SASL/SCRAM) or `aws-msk-iam` (MSK IAM, via OAUTHBEARER).
    pub sasl: Option<Sasl>,
    /// SCRAM user name.
    pub username: Option<String>,
    /// Environment variable holding the SCRAM password.
    pub password_env: Option<String>,
    /// Region of the cluster, for IAM (default: the AWS chain's region, `AWS_REGION`).
    pub region: Option<String>,
}

/// The transport.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// No TLS, no SASL (MSK port 9092).
    Plaintext,
    /// TLS, optionally with a client certificate (MSK ports 9094, 14001+ multi-VPC).
    Tls,
    /// SASL without TLS (test brokers only; MSK always uses TLS with SASL).
    SaslPlaintext,
    /// SASL over TLS (MSK ports 9096 SCRAM, 9098 IAM).
    SaslTls,
}

/// The SASL mechanism.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Sasl {
    /// SASL/SCRAM-SHA-512 with a user name and password (from Secrets Manager on MSK).
    #[serde(rename = "scram-sha-512")]
    ScramSha512,
    /// IAM access control: SASL/OAUTHBEARER with a SigV4-presigned token.
    AwsMskIam,
}

/// A security setting that cannot be used, named so the user can fix it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("[sources.kafka.security]: {0}")]
pub struct SecurityError(pub String);

impl KafkaSecurity {
    /// The librdkafka options these settings mean, with secrets read from the environment
    /// (`env` looks a variable up; the process environment in real use).
    pub fn options(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<(&'static str, String)>, SecurityError> {
        let protocol = self.protocol.unwrap_or(if self.sasl.is_some() {
            Protocol::SaslTls
        } else {
            Protocol::Plaintext
        });
        let tls = matches!(protocol, Protocol::Tls | Protocol::SaslTls);
        let sasl = matches!(protocol, Protocol::SaslPlaintext | Protocol::SaslTls);
        let mut o = vec![(
            "security.protocol",
            match protocol {
                Protocol::Plaintext => "plaintext",
                Protocol::Tls => "ssl",
                Protocol::SaslPlaintext => "sasl_plaintext",
                Protocol::SaslTls => "sasl_ssl",
            }
            .to_string(),
        )];
        let tls_files = [&self.ca_file, &self.cert_file, &self.key_file];
        if !tls && tls_files.iter().any(|f| f.is_some()) {
            return Err(SecurityError(
                "ca_file, cert_file and key_file need protocol \"tls\" or \"sasl_tls\"".into(),
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(SecurityError(
                "mutual TLS needs both cert_file and key_file".into(),
            ));
        }
        for (name, file) in [
            ("ssl.ca.location", &self.ca_file),
            ("ssl.certificate.location", &self.cert_file),
            ("ssl.key.location", &self.key_file),
        ] {
            if let Some(f) = file {
                if !f.is_file() {
                    return Err(SecurityError(format!(
                        "{} does not exist or is not a file",
                        f.display()
                    )));
                }
                o.push((name, f.display().to_string()));
            }
        }
        if let Some(var) = &self.key_password_env {
            o.push(("ssl.key.password", secret(&env, var, "key_password_env")?));
        }
        match (sasl, self.sasl) {
            (true, None) => {
                return Err(SecurityError(format!(
                    "protocol {protocol:?} needs `sasl = \"scram-sha-512\"` or `sasl = \"aws-msk-iam\"`"
                )))
            }
            (false, Some(_)) => {
                return Err(SecurityError(
                    "sasl needs protocol \"sasl_tls\" (or \"sasl_plaintext\" for a test broker)"
                        .into(),
                ))
            }
            (_, Some(Sasl::ScramSha512)) => {
                let user = self.username.clone().ok_or_else(|| {
                    SecurityError("scram-sha-512 needs `username`".into())
                })?;
                let var = self.password_env.as_deref().ok_or_else(|| {
                    SecurityError(
                        "scram-sha-512 needs `password_env`, the environment variable holding the password".into(),
                    )
                })?;
                o.push(("sasl.mechanism", "SCRAM-SHA-512".into()));
                o.push(("sasl.username", user));
                o.push(("sasl.password", secret(&env, var, "password_env")?));
            }
            (_, Some(Sasl::AwsMskIam)) => {
                if self.username.is_some() || self.password_env.is_some() {
                    return Err(SecurityError(
                        "aws-msk-iam takes credentials from the AWS chain, not username/password_env".into(),
                    ));
                }
                o.push(("sasl.mechanism", "OAUTHBEARER".into()));
            }
            (false, None) => {}
        }
        Ok(o)
    }

    /// Whether tokens must be signed for IAM.
    pub fn iam(&self) -> bool {
        self.sasl == Some(Sasl::AwsMskIam)
    }
}

fn secret(
    env: &impl Fn(&str) -> Option<String>,
    var: &str,
    field: &str,
) -> Result<String, SecurityError> {
    env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
        SecurityError(format!(
            "{field} names the environment variable {var}, which is not set; export it"
        ))
    })
}

/// Characters SigV4 leaves unescaped in a query (RFC 3986 unreserved).
const QUERY: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The MSK IAM token for `region` signed with `creds` at `now`, and when it expires (ms since
/// the epoch): the base64url (no padding) of
/// `https://kafka.REGION.amazonaws.com/?Action=kafka-cluster%3AConnect&X-Amz-…&User-Agent=…`,
/// the format of AWS's aws-msk-iam-sasl-signer libraries.
pub fn msk_iam_token(
    region: &str,
    creds: &Credentials,
    now: SystemTime,
) -> Result<(String, i64), String> {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    use base64::Engine;

    let url = format!("https://kafka.{region}.amazonaws.com/?Action=kafka-cluster%3AConnect");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(IAM_EXPIRY);
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kafka-cluster")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot build signing parameters: {e}"))?;
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| format!("cannot sign {url}: {e}"))?;
    let (instructions, _) = sign(request, &params.into())
        .map_err(|e| format!("cannot sign {url}: {e}"))?
        .into_parts();
    let mut signed = url;
    for (k, v) in instructions.params() {
        signed.push('&');
        signed.push_str(k);
        signed.push('=');
        signed.extend(percent_encoding::utf8_percent_encode(v, QUERY));
    }
    signed.push_str(concat!(
        "&User-Agent=linkmeter%2F",
        env!("CARGO_PKG_VERSION")
    ));
    let signed_at = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| "the clock is before 1970".to_string())?
        .as_secs() as i64;
    Ok((
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed),
        (signed_at + IAM_EXPIRY.as_secs() as i64) * 1000,
    ))
}

/// Signs IAM tokens with credentials from the AWS chain (refreshed as the chain refreshes).
pub struct IamSigner {
    region: String,
    creds: SharedCredentialsProvider,
    rt: tokio::runtime::Handle,
}

impl IamSigner {
    /// Loads the AWS chain (environment, profile, ECS task role, instance role); its requests
    /// run on `rt`.
    pub fn new(
        region: Option<&str>,
        rt: tokio::runtime::Handle,
    ) -> Result<IamSigner, SecurityError> {
        let sdk = in_thread(
            &rt,
            aws_config::defaults(aws_config::BehaviorVersion::latest()).load(),
        );
        let region = region
            .map(str::to_string)
            .or_else(|| sdk.region().map(|r| r.to_string()))
            .ok_or_else(|| {
                SecurityError(
                    "aws-msk-iam needs the cluster's region: set `region` or AWS_REGION".into(),
                )
            })?;
        let creds = sdk
            .credentials_provider()
            .ok_or_else(|| SecurityError("aws-msk-iam found no AWS credential chain".into()))?;
        Ok(IamSigner { region, creds, rt })
    }

    /// A fresh token.
    pub fn token(&self) -> Result<OAuthToken, String> {
        let creds = in_thread(&self.rt, self.creds.provide_credentials())
            .map_err(|e| format!("no AWS credentials for MSK IAM: {e}"))?;
        let (token, lifetime_ms) = msk_iam_token(&self.region, &creds, SystemTime::now())?;
        Ok(OAuthToken {
            token,
            // MSK takes the identity from the signature; librdkafka only needs a name.
            principal_name: "linkmeter".into(),
            lifetime_ms,
        })
    }
}

/// Runs a future on `rt` from a thread of its own, so that it works whether or not the caller
/// is inside another runtime.
fn in_thread<F: std::future::Future + Send>(rt: &tokio::runtime::Handle, f: F) -> F::Output
where
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| rt.block_on(f))
            .join()
            .expect("the credential chain does not panic")
    })
}

/// The consumer's context: signs IAM tokens when the source uses IAM.
#[derive(Default)]
pub struct KafkaContext {
    /// The signer, for `aws-msk-iam`.
    pub iam: Option<IamSigner>,
    /// Set once a token was handed to librdkafka.
    pub token_set: std::sync::atomic::AtomicBool,
}

impl ClientContext for KafkaContext {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = true;

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        // The end of a partition is how a batch run knows it has read everything; librdkafka
        // also reports it as a "global error", which printed a scary line per partition.
        if error.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::PartitionEOF) {
            return;
        }
        tracing::error!(message = "librdkafka error", error = %error, reason);
    }

    fn generate_oauth_token(
        &self,
        _config: Option<&str>,
    ) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        match &self.iam {
            Some(s) => {
                let t = s.token()?;
                self.token_set
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Ok(t)
            }
            None => Err("sasl.mechanism OAUTHBEARER needs `sasl = \"aws-msk-iam\"` in [sources.kafka.security]".into()),
        }
    }
}

impl ConsumerContext for KafkaContext {}

/// Applies typed security settings to a client config (after raw options, before linkmeter's
/// forced ones), and builds the context that signs IAM tokens.
pub fn configure(
    sec: &KafkaSecurity,
    cfg: &mut ClientConfig,
    rt: &tokio::runtime::Handle,
) -> Result<KafkaContext, SecurityError> {
    if *sec == KafkaSecurity::default() {
        return Ok(KafkaContext::default());
    }
    for (k, v) in sec.options(|v| std::env::var(v).ok())? {
        cfg.set(k, v);
    }
    let iam = if sec.iam() {
        Some(IamSigner::new(sec.region.as_deref(), rt.clone())?)
    } else {
        None
    };
    Ok(KafkaContext {
        iam,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(v: &str) -> Option<String> {
        (v == "PW").then(|| "hunter2".into())
    }

    fn opts(s: &KafkaSecurity) -> Result<Vec<(&'static str, String)>, SecurityError> {
        s.options(env)
    }

    #[test]
    fn schemes_become_librdkafka_options() {
        let none = opts(&KafkaSecurity::default()).unwrap();
        assert_eq!(none, vec![("security.protocol", "plaintext".to_string())]);

        let dir = tempfile::tempdir().unwrap();
        let pem = |n: &str| {
            let p = dir.path().join(n);
            std::fs::write(&p, "x").unwrap();
            p
        };
        let mtls = KafkaSecurity {
            protocol: Some(Protocol::Tls),
            ca_file: Some(pem("ca.pem")),
            cert_file: Some(pem("c.pem")),
            key_file: Some(pem("k.pem")),
            key_password_env: Some("PW".into()),
            ..Default::default()
        };
        let o = opts(&mtls).unwrap();
        assert!(o.contains(&("security.protocol", "ssl".into())));
        assert!(o.contains(&("ssl.key.password", "hunter2".into())));
        assert!(o
            .iter()
            .any(|(k, v)| *k == "ssl.ca.location" && v.ends_with("ca.pem")));

        let scram = KafkaSecurity {
            sasl: Some(Sasl::ScramSha512),
            username: Some("alice".into()),
            password_env: Some("PW".into()),
            ..Default::default()
        };
        let o = opts(&scram).unwrap();
        assert_eq!(
            o[0],
            ("security.protocol", "sasl_ssl".into()),
            "SASL defaults to TLS"
        );
        assert!(o.contains(&("sasl.mechanism", "SCRAM-SHA-512".into())));
        assert!(o.contains(&("sasl.password", "hunter2".into())));

        let iam = KafkaSecurity {
            sasl: Some(Sasl::AwsMskIam),
            ..Default::default()
        };
        assert!(opts(&iam)
            .unwrap()
            .contains(&("sasl.mechanism", "OAUTHBEARER".into())));
    }

    #[test]
    fn settings_read_as_the_readme_spells_them() {
        let s: KafkaSecurity = toml::from_str(
            "protocol = \"sasl_tls\"\nsasl = \"scram-sha-512\"\nusername = \"u\"\npassword_env = \"PW\"",
        )
        .unwrap();
        assert_eq!(s.sasl, Some(Sasl::ScramSha512));
        assert_eq!(s.protocol, Some(Protocol::SaslTls));
        let s: KafkaSecurity =
            toml::from_str("sasl = \"aws-msk-iam\"\nregion = \"eu-west-1\"").unwrap();
        assert!(s.iam());
        let e = toml::from_str::<KafkaSecurity>("sasl = \"plain\"").unwrap_err();
        assert!(e.to_string().contains("scram-sha-512"), "{e}");
        assert!(toml::from_str::<KafkaSecurity>("passwd = \"x\"").is_err());
    }

    #[test]
    fn unusable_settings_say_what_to_fix() {
        let e = |s: KafkaSecurity| opts(&s).unwrap_err().0;
        assert!(e(KafkaSecurity {
            sasl: Some(Sasl::ScramSha512),
            username: Some("a".into()),
            password_env: Some("UNSET".into()),
            ..Default::default()
        })
        .contains("UNSET, which is not set"));
        assert!(e(KafkaSecurity {
            sasl: Some(Sasl::ScramSha512),
            ..Default::default()
        })
        .contains("username"));
        assert!(e(KafkaSecurity {
            protocol: Some(Protocol::Plaintext),
            ca_file: Some("/x".into()),
            ..Default::default()
        })
        .contains("need protocol"));
        assert!(e(KafkaSecurity {
            protocol: Some(Protocol::Tls),
            ca_file: Some("/no/such/ca.pem".into()),
            ..Default::default()
        })
        .contains("/no/such/ca.pem does not exist"));
        assert!(e(KafkaSecurity {
            protocol: Some(Protocol::Tls),
            cert_file: Some("/x".into()),
            ..Default::default()
        })
        .contains("both cert_file and key_file"));
        assert!(e(KafkaSecurity {
            protocol: Some(Protocol::SaslTls),
            ..Default::default()
        })
        .contains("needs `sasl"));
        assert!(e(KafkaSecurity {
            protocol: Some(Protocol::Tls),
            sasl: Some(Sasl::AwsMskIam),
            ..Default::default()
        })
        .contains("sasl needs protocol"));
    }

    /// The expected signature was computed by botocore 1.x (`SigV4QueryAuth`, the signer AWS's
    /// own aws-msk-iam-sasl-signer-python uses) for the same credentials, region and instant:
    /// see `testdata/msk_iam_botocore.py`, which prints it.
    #[test]
    fn iam_token_matches_botocore() {
        let creds = Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("SESSIONTOKEN/+=".into()),
            None,
            "test",
        );
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000); // 2023-11-14T22:13:20Z
        let (token, expires) = msk_iam_token("eu-west-1", &creds, at).unwrap();
        assert_eq!(expires, (1_700_000_000 + 900) * 1000);
        use base64::Engine;
        assert!(!token.contains('=') && !token.contains('+') && !token.contains('/'));
        let url = String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&token)
                .unwrap(),
        )
        .unwrap();
        let (base, query) = url.split_once('?').unwrap();
        assert_eq!(base, "https://kafka.eu-west-1.amazonaws.com/");
        let params: std::collections::BTreeMap<String, String> = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (
                    k.to_string(),
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8()
                        .unwrap()
                        .into_owned(),
                )
            })
            .collect();
        assert_eq!(params["Action"], "kafka-cluster:Connect");
        assert_eq!(params["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            params["X-Amz-Credential"],
            "AKIDEXAMPLE/20231114/eu-west-1/kafka-cluster/aws4_request"
        );
        assert_eq!(params["X-Amz-Date"], "20231114T221320Z");
        assert_eq!(params["X-Amz-Expires"], "900");
        assert_eq!(params["X-Amz-SignedHeaders"], "host");
        assert_eq!(params["X-Amz-Security-Token"], "SESSIONTOKEN/+=");
        assert!(params["User-Agent"].starts_with("linkmeter/"));
        assert_eq!(params["X-Amz-Signature"], BOTOCORE_SIGNATURE);
    }

    const BOTOCORE_SIGNATURE: &str =
        "47f9d5e8aff941a8575abb6a2150a22740617220b2d22558b62061ab0c0f64b5";
}
