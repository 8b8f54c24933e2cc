//! End to end against brokers of the test's own: a Tansu whose log lives in the S3 server,
//! stopped and started again in the middle of a run, and one reached only through a TLS proxy
//! that asks for client certificates. Helpers and the shared setup are in `kafka.rs`.

use std::path::Path;
use std::time::Duration;

use linkmeter_test_support::*;

use super::kafka::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker of our own (the Tansu binary `.ci/services.sh` installed) that keeps its log in
/// a bucket of the S3 server, so it can be stopped and started again without losing messages.
fn start_broker(port: u16, bucket: &str) -> std::process::Child {
    start_tansu(port, port, &format!("s3://{bucket}/"))
}

/// Tansu on `port`, telling clients to connect to `advertised` (a TLS proxy's port, or itself).
fn start_tansu(port: u16, advertised: u16, storage: &str) -> std::process::Child {
    let tansu = std::env::var("TANSU_BIN").expect("TANSU_BIN is set by .ci/test");
    let child = std::process::Command::new(tansu)
        .args([
            "broker",
            "--listener-url",
            &format!("tcp://127.0.0.1:{port}"),
            "--advertised-listener-url",
            &format!("tcp://127.0.0.1:{advertised}"),
        ])
        .args(["--storage-engine", storage])
        .env(
            "AWS_ENDPOINT",
            std::env::var("S3_ENDPOINT").expect("S3_ENDPOINT is set by .ci/test"),
        )
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "broker did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[test]
fn kafka_broker_restart_mid_run_loses_and_duplicates_nothing() {
    let port = free_port();
    let bucket = unique("tansu");
    let made = std::process::Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            &format!("{}/{bucket}", std::env::var("S3_ENDPOINT").unwrap()),
        ])
        .status()
        .unwrap();
    assert!(made.success());
    let mut broker = start_broker(port, &bucket);
    let s = setup_on("restart", &format!("127.0.0.1:{port}"), &[]);
    let files = config(&s, "files", "as-files", "");
    ok(&s.dir, &["ingest", "--config", files.to_str().unwrap()]);
    // Little in flight (the reader waits for the workers) and small segments (each committed
    // as it fills), so the run is still going, with some of it committed, when the broker
    // goes away.
    let cfg = kafka_config(&s, "restart", "");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "chunk_bytes = 20000\nround_bytes = 200000",
        "chunk_bytes = 10000\nround_bytes = 40000",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut run = std::process::Command::new(bin())
        .args(["ingest", "--config", cfg.to_str().unwrap()])
        .current_dir(&s.dir)
        .env("LINKMETER_LOG", "warn")
        .env("LINKMETER_FLUSH_ROWS", "200")
        .stdout(std::fs::File::create(s.dir.join("run.out")).unwrap())
        .stderr(std::fs::File::create(s.dir.join("run.err")).unwrap())
        .spawn()
        .unwrap();
    let kwh = s.dir.join("restart-wh");
    // Wait until a segment is committed, then stop the broker hard and start it again.
    let t0 = std::time::Instant::now();
    while !kwh.join("inputs").is_dir() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no segment was committed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        run.try_wait().unwrap().is_none(),
        "the run ended before the broker restart; nothing tested"
    );
    broker.kill().unwrap();
    broker.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut broker = start_broker(port, &bucket);
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(st) = run.try_wait().unwrap() {
            break st;
        }
        // Not a speed limit, a guard against a hang.
        if t0.elapsed() > Duration::from_secs(300) {
            let _ = run.kill();
            panic!(
                "the run never finished\nstdout:\n{}\nstderr:\n{}",
                std::fs::read_to_string(s.dir.join("run.out")).unwrap_or_default(),
                std::fs::read_to_string(s.dir.join("run.err")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(s.dir.join("run.out")).unwrap();
    let err = std::fs::read_to_string(s.dir.join("run.err")).unwrap();
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("[balanced]"), "{out}");
    assert_eq!(totals(&kwh), totals(&s.dir.join("files-wh")));
    let out = ok(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    assert_eq!(inputs_read(&out), 0, "{out}");
    let _ = broker.kill();
    let _ = broker.wait();
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, made with the openssl CLI.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("the openssl command is needed (.ci/run installs it)");
        assert!(st.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=linkmeter test CA",
    ]);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &format!("/CN=linkmeter test {name}"),
        ]);
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &format!("{name}.ext"),
        ]);
    }
}

/// Kills a child process when dropped (a failed assertion must not leave servers behind).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn kafka_over_mutual_tls_equals_plaintext_and_refuses_without_a_client_certificate() {
    use std::io::BufRead;
    let certs = tempfile::tempdir().unwrap();
    let c = certs.path();
    certificates(c);
    let path = |f: &str| c.join(f).display().to_string();
    // Clients reach the broker only through the TLS proxy: Tansu advertises the proxy's port.
    let broker_port = free_port();
    let mut proxy = std::process::Command::new("python3")
        .arg(root().join("tests/tls_proxy.py"))
        .arg(broker_port.to_string())
        .args([path("server.pem"), path("server.key"), path("ca.pem")])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the TLS proxy");
    let mut first = String::new();
    std::io::BufReader::new(proxy.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    let _proxy = Killed(proxy);
    let tls_port: u16 = first.trim().parse().expect("the proxy prints its port");
    let broker = start_tansu(broker_port, tls_port, "memory://tansu/");
    let _broker = Killed(broker);
    let tls = [
        ("security.protocol", "ssl".to_string()),
        ("ssl.ca.location", path("ca.pem")),
        ("ssl.certificate.location", path("client.pem")),
        ("ssl.key.location", path("client.key")),
    ];
    let s = setup_on("tls", &format!("127.0.0.1:{tls_port}"), &tls);
    let files = config(&s, "files", "as-files", "");
    ok(&s.dir, &["ingest", "--config", files.to_str().unwrap()]);
    let security = format!(
        "idle_timeout_secs = 8\n\n[sources.kafka.security]\nprotocol = \"tls\"\nca_file = \"{}\"\n",
        path("ca.pem")
    );
    let mtls = format!(
        "{security}cert_file = \"{}\"\nkey_file = \"{}\"\n",
        path("client.pem"),
        path("client.key")
    );
    let cfg = kafka_config(&s, "mtls", &mtls);
    let out = ok(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    assert!(out.contains("[balanced]"), "{out}");
    assert_eq!(
        totals(&s.dir.join("mtls-wh")),
        totals(&s.dir.join("files-wh")),
        "over mutual TLS, the same as the lines from files"
    );
    // No client certificate: the proxy refuses the handshake and the run fails, naming the
    // topic and what to check, and writes nothing.
    let cfg = kafka_config(&s, "nocert", &security);
    let o = linkmeter(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&s.topic) && err.contains("security"), "{err}");
    assert!(!s.dir.join("nocert-wh").join("flows").exists());
    // A secret whose variable is not set is a config error (exit 2), found before connecting.
    let cfg = kafka_config(
        &s,
        "nopw",
        "[sources.kafka.security]\nsasl = \"scram-sha-512\"\nusername = \"u\"\npassword_env = \"LM_TEST_UNSET_PASSWORD\"\n",
    );
    let o = linkmeter(&s.dir, &["ingest", "--config", cfg.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("LM_TEST_UNSET_PASSWORD, which is not set"),
        "{err}"
    );
}
