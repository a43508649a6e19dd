//! The admission server over real TLS on 127.0.0.1: a client trusting the CA
//! gets reviews answered; certificates rotate by kubelet-style symlink swap
//! under continuous requests without losing one; a broken new pair is
//! refused; plain HTTP on the HTTPS port gets nothing, TLS 1.0/1.1 and
//! non-AEAD suites get an alert; SIGTERM drains.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use llm_injector::server::tls::{DAY, Validity, generate};
use llm_injector::server::{ServeConfig, Server, TlsSource};
use support::server::{ServeProcess, fixture, get_plain, post, root, tls_connector};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn local() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn config(tls: TlsSource) -> ServeConfig {
    let mut config = ServeConfig::new(tls, Some(vec![root().join("examples/catalog")]));
    config.addr = local();
    config.admin_addr = local();
    config.shutdown_delay = Duration::from_millis(0);
    config
}

/// Starts a server; returns its addresses and the trigger that stops it.
async fn start(
    config: ServeConfig,
) -> (
    SocketAddr,
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let server = Server::bind(config).await.expect("bind");
    let addr = server.local_addr().unwrap();
    let admin = server.admin_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    (addr, admin, stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_signed_server_answers_a_client_trusting_its_ca() {
    let dir = support::server::TempDir::new();
    let ca_file = dir.path().join("ca.crt");
    let (addr, admin, stop, handle) = start(config(TlsSource::SelfSigned {
        ca_file: ca_file.clone(),
    }))
    .await;
    let connector = tls_connector(&std::fs::read(&ca_file).unwrap());
    let answer = post(
        &connector,
        addr,
        "/mutate?timeout=5s",
        fixture("pod-create-generatename.json"),
    )
    .await
    .expect("request");
    assert_eq!(answer.status, 200);
    let review = answer.json();
    assert_eq!(review["response"]["allowed"], true);
    assert!(support::server::patch_of(&review).is_some());
    assert_eq!(get_plain(admin, "/readyz").await.unwrap().0, 200);

    // A client that does not trust the CA is refused at the handshake.
    let other = generate(
        "someone-else",
        &["localhost".to_owned()],
        Validity::default(),
    )
    .unwrap();
    let stranger = tls_connector(other.ca_pem.as_bytes());
    assert!(
        post(&stranger, addr, "/mutate", fixture("pod-create-named.json"))
            .await
            .is_err()
    );

    // Plain HTTP on the HTTPS port gets no HTTP answer.
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
    assert!(
        !buf.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&buf)
    );

    // Old protocol versions and suites get a TLS alert, not a session.
    for (what, hello) in [
        ("TLS 1.1", client_hello([3, 2], &[0x00, 0x2f])),
        ("TLS 1.0", client_hello([3, 1], &[0x00, 0x2f])),
        // TLS 1.2 offering only CBC suites without forward secrecy.
        (
            "TLS 1.2 with RSA-CBC suites",
            client_hello([3, 3], &[0x00, 0x2f, 0x00, 0x35, 0x00, 0x3c]),
        ),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&hello).await.unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut buf)).await;
        assert_eq!(
            buf.first(),
            Some(&0x15),
            "{what}: expected a TLS alert record, got {buf:02x?}"
        );
    }

    stop.send(()).unwrap();
    handle.await.unwrap();
}

/// A minimal ClientHello record for protocol `version` offering `suites`
/// (two bytes each), with SNI `localhost` and the groups and signature
/// algorithms a modern server needs, so only the version or suites can fail.
fn client_hello(version: [u8; 2], suites: &[u8]) -> Vec<u8> {
    fn with_len16(body: &[u8]) -> Vec<u8> {
        let mut out = u16::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out
    }
    fn extension(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut out = kind.to_be_bytes().to_vec();
        out.extend(with_len16(body));
        out
    }
    let mut sni = vec![0];
    sni.extend(with_len16(b"localhost"));
    let mut extensions = extension(0, &with_len16(&sni));
    // supported_groups: x25519, secp256r1; signature_algorithms: ecdsa_p256_sha256, rsa_pss_sha256, rsa_pkcs1_sha256.
    extensions.extend(extension(10, &with_len16(&[0x00, 0x1d, 0x00, 0x17])));
    extensions.extend(extension(
        13,
        &with_len16(&[0x04, 0x03, 0x08, 0x04, 0x04, 0x01]),
    ));
    extensions.extend(extension(11, &[1, 0])); // ec_point_formats: uncompressed

    let mut hello = version.to_vec();
    hello.extend([7u8; 32]); // random
    hello.push(0); // no session id
    hello.extend(with_len16(suites));
    hello.extend([1, 0]); // compression: null
    hello.extend(with_len16(&extensions));
    let mut handshake = vec![1, 0];
    handshake.extend(with_len16(&hello));
    let mut record = vec![0x16, 3, 1];
    record.extend(with_len16(&handshake));
    record
}

/// Writes a pair the way kubelet lays out a Secret volume:
/// `dir/..<ts>/tls.{crt,key}`, `dir/..data -> ..<ts>`, `dir/tls.crt -> ..data/tls.crt`.
fn write_secret_volume(dir: &Path, generation: u32, cert: &str, key: &str) {
    let versioned = dir.join(format!("..2026_11_27_{generation}"));
    std::fs::create_dir_all(&versioned).unwrap();
    std::fs::write(versioned.join("tls.crt"), cert).unwrap();
    std::fs::write(versioned.join("tls.key"), key).unwrap();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(versioned.file_name().unwrap(), &tmp).unwrap();
    // The atomic swap: rename the new link over ..data.
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for file in ["tls.crt", "tls.key"] {
        let link = dir.join(file);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(PathBuf::from("..data").join(file), &link).unwrap();
        }
    }
}

fn leaf_der(cert_pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap()
        .as_ref()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_symlink_swap_loses_no_request() {
    let dir = support::server::TempDir::new();
    let first = generate(
        "llm-injector",
        &["localhost".to_owned()],
        Validity::default(),
    )
    .unwrap();
    write_secret_volume(dir.path(), 1, &first.cert_pem, &first.key_pem);
    let mut config = config(TlsSource::Files {
        cert: dir.path().join("tls.crt"),
        key: dir.path().join("tls.key"),
        reload_interval: Duration::from_millis(100),
    });
    config.drain_timeout = Duration::from_secs(5);
    let (addr, admin, stop, handle) = start(config).await;
    let expiry_days = || async move {
        let (_, metrics) = get_plain(admin, "/metrics").await.expect("metrics");
        let expiry: i64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("llm_injector_tls_certificate_expiry_timestamp_seconds "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no expiry metric in\n{metrics}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        (expiry - now + 3600) / 86_400
    };
    assert_eq!(expiry_days().await, 365, "the first certificate's expiry");

    // The second pair comes from a new CA (a CA rotation): the client trusts both.
    // Valid 30 days, so the expiry metric shows the rotation.
    let second = generate(
        "llm-injector",
        &["localhost".to_owned()],
        Validity {
            ca: DAY * 30,
            leaf: DAY * 30,
        },
    )
    .unwrap();
    let connector = tls_connector(format!("{}{}", first.ca_pem, second.ca_pem).as_bytes());

    let running = Arc::new(AtomicBool::new(true));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (connector, running, ok, failed) = (
            connector.clone(),
            running.clone(),
            ok.clone(),
            failed.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut certs = Vec::new();
            while running.load(Ordering::Acquire) {
                match post(
                    &connector,
                    addr,
                    "/mutate",
                    fixture("pod-create-named.json"),
                )
                .await
                {
                    Ok(answer) if answer.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        certs.push(answer.server_cert);
                    }
                    Ok(_) | Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            certs
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    write_secret_volume(dir.path(), 2, &second.cert_pem, &second.key_pem);
    tokio::time::sleep(Duration::from_millis(800)).await;

    // A broken pair (key of another certificate) is refused; the second pair stays.
    let third = generate(
        "llm-injector",
        &["localhost".to_owned()],
        Validity::default(),
    )
    .unwrap();
    write_secret_volume(dir.path(), 3, &third.cert_pem, &first.key_pem);
    tokio::time::sleep(Duration::from_millis(500)).await;
    running.store(false, Ordering::Release);
    let mut seen = Vec::new();
    for client in clients {
        seen.extend(client.await.unwrap());
    }

    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "requests lost during rotation ({ok} succeeded)");
    assert!(ok > 20, "too few requests to show anything: {ok}");
    let (first_leaf, second_leaf, third_leaf) = (
        leaf_der(&first.cert_pem),
        leaf_der(&second.cert_pem),
        leaf_der(&third.cert_pem),
    );
    let count = |leaf: &Vec<u8>| seen.iter().filter(|c| *c == leaf).count();
    eprintln!(
        "certificates served: first {} rotated {} refused {} of {}",
        count(&first_leaf),
        count(&second_leaf),
        count(&third_leaf),
        seen.len()
    );
    assert_eq!(
        seen.first(),
        Some(&first_leaf),
        "served the first certificate before the swap"
    );
    assert_eq!(
        seen.last(),
        Some(&second_leaf),
        "serves the rotated certificate afterwards, not the broken one"
    );
    assert!(!seen.contains(&third_leaf), "a mismatched pair was served");
    assert_eq!(
        expiry_days().await,
        30,
        "the metric follows the rotated certificate, not the refused one"
    );

    stop.send(()).unwrap();
    handle.await.unwrap();
}

#[test]
fn sigterm_turns_unready_finishes_in_flight_and_exits_0() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = support::server::TempDir::new();
        let ca_file = dir.path().join("ca.crt");
        let catalog = root().join("examples/catalog");
        let server = ServeProcess::start(&[
            "--shutdown-delay".as_ref(),
            "1s".as_ref(),
            "--catalog".as_ref(),
            catalog.as_os_str(),
            "--ca-file".as_ref(),
            ca_file.as_os_str(),
        ])
        .await;
        let (addr, admin) = (server.addr, server.admin);
        let connector = tls_connector(&std::fs::read(&ca_file).unwrap());
        assert_eq!(get_plain(admin, "/readyz").await.unwrap().0, 200);

        // An in-flight review: headers and half the body sent before SIGTERM.
        let body = fixture("pod-create-named.json");
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let head = format!(
            "POST /mutate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(&body[..body.len() / 2]).await.unwrap();
        tls.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        server.terminate();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (ready, text) = get_plain(admin, "/readyz").await.unwrap();
        assert_eq!(ready, 503, "readyz during shutdown: {text}");

        tls.write_all(&body[body.len() / 2..]).await.unwrap();
        tls.flush().await.unwrap();
        let mut response = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut response)).await;
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 200"), "in-flight review lost: {response}");
        assert!(response.contains("\"allowed\":true"), "{response}");

        let mut child = server.child;
        let exit = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.expect("exits").unwrap();
        assert_eq!(exit.code(), Some(0));
        assert!(post(&connector, addr, "/mutate", body).await.is_err(), "still serving after exit");
    });
}
