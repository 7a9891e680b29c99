//! Loopback tests: real QUIC endpoints on 127.0.0.1, certificates generated at test time.

use super::*;
use crate::tls::provider;
use quinn::crypto::rustls::QuicClientConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weft_keys::{ClusterCa, NodeId, NodeIdentity};

const T: Duration = Duration::from_secs(5);

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn identity(ca: &ClusterCa, id: &str) -> NodeIdentity {
    ca.issue_identity(&NodeId::new(id).unwrap()).unwrap()
}

/// A server whose handler answers `<peer node id>:<request>` and counts calls.
fn echo_server(
    id: &NodeIdentity,
    options: ServerOptions,
    with_join: bool,
) -> (RpcServer, SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let rpc = rpc_handler(move |peer: PeerId, request: Vec<u8>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut out = peer.node_id.as_str().as_bytes().to_vec();
            out.push(b':');
            out.extend(request);
            out
        }
    });
    let join = with_join.then(|| {
        join_handler(|_addr, request: Vec<u8>| async move {
            let mut out = b"joined:".to_vec();
            out.extend(request);
            out
        })
    });
    let material = TlsMaterial::from_identity(id).unwrap();
    let server = RpcServer::bind_with(loopback(), &material, options, rpc, join).unwrap();
    let addr = server.local_addr().unwrap();
    (server, addr, calls)
}

#[tokio::test]
async fn round_trip_names_the_calling_node_and_reuses_the_connection() {
    let ca = ClusterCa::generate("t").unwrap();
    let (server, addr, calls) =
        echo_server(&identity(&ca, "server"), ServerOptions::default(), false);
    let client = RpcClient::new(&identity(&ca, "client-1")).unwrap();
    let answer = client.call(addr, "server", b"hello", T).await.unwrap();
    assert_eq!(answer, b"client-1:hello");
    let again = client.call(addr, "server", b"again", T).await.unwrap();
    assert_eq!(again, b"client-1:again");
    assert_eq!(client.connections.lock().unwrap().len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    client.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn typed_calls_round_trip() {
    let ca = ClusterCa::generate("t").unwrap();
    let server_id = identity(&ca, "server");
    let material = TlsMaterial::from_identity(&server_id).unwrap();
    let rpc = rpc_handler(|_peer, request: Vec<u8>| async move {
        match decode::<(u32, String)>(&request) {
            Ok((n, s)) => encode(&format!("{s}{}", n + 1)).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    });
    let server =
        RpcServer::bind_with(loopback(), &material, ServerOptions::default(), rpc, None).unwrap();
    let addr = server.local_addr().unwrap();
    let client = RpcClient::new(&identity(&ca, "c")).unwrap();
    let answer: String = client
        .call_typed(addr, "server", &(41u32, "n".to_owned()), T)
        .await
        .unwrap();
    assert_eq!(answer, "n42");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_certified_by_another_ca_gets_nothing() {
    let ca = ClusterCa::generate("t").unwrap();
    let other = ClusterCa::generate("evil").unwrap();
    let (server, addr, calls) =
        echo_server(&identity(&ca, "server"), ServerOptions::default(), true);
    // Its certificate and key come from another CA, but it trusts the real one (so the
    // failure is the server refusing it, not the client refusing the server).
    let foreign = identity(&other, "intruder");
    let material = TlsMaterial {
        cert_der: foreign.cert_der().to_vec(),
        key_der: foreign.key_pkcs8_der().unwrap(),
        ca_der: ca.cert_der().to_vec(),
    };
    let client = RpcClient::with_material(&material).unwrap();
    let err = client.call(addr, "server", b"hi", T).await.unwrap_err();
    assert!(matches!(err, RpcError::Refused { .. }), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_without_certificate_gets_nothing_on_the_rpc_alpn() {
    let ca = ClusterCa::generate("t").unwrap();
    let (server, addr, calls) =
        echo_server(&identity(&ca, "server"), ServerOptions::default(), true);
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            ca.cert_der().to_vec(),
        ))
        .unwrap();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN_RPC.to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls).unwrap()));
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(config);
    let outcome = tokio::time::timeout(T, async {
        let conn = endpoint.connect(addr, "server")?.await?;
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(b"hi").await?;
        send.finish()?;
        Ok::<_, Box<dyn std::error::Error>>(recv.read_to_end(1024).await?)
    })
    .await
    .unwrap();
    let err = format!("{:?}", outcome.expect_err("got an answer"));
    assert!(
        err.contains("ApplicationClosed") && err.contains("refused"),
        "{err}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn an_oversized_request_is_refused_and_the_server_keeps_serving() {
    let ca = ClusterCa::generate("t").unwrap();
    let options = ServerOptions {
        max_message: 1024,
        ..ServerOptions::default()
    };
    let (server, addr, calls) = echo_server(&identity(&ca, "server"), options, false);
    let client = RpcClient::new(&identity(&ca, "c")).unwrap();
    let big = vec![7u8; 256 * 1024];
    let err = client.call(addr, "server", &big, T).await.unwrap_err();
    assert!(matches!(err, RpcError::TooLarge { .. }), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let ok = client.call(addr, "server", b"small", T).await.unwrap();
    assert_eq!(ok, b"c:small");
    // The client refuses to send more than the protocol cap at all.
    let huge = vec![0u8; MAX_MESSAGE + 1];
    let err = client.call(addr, "server", &huge, T).await.unwrap_err();
    assert!(matches!(err, RpcError::TooLarge { .. }), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn join_with_the_right_fingerprint_works_and_a_wrong_one_is_refused() {
    let ca = ClusterCa::generate("t").unwrap();
    let (server, addr, calls) = echo_server(&identity(&ca, "seed"), ServerOptions::default(), true);
    let joiner = JoinClient::new(ca.fingerprint()).unwrap();
    let answer = joiner.call(addr, b"secret", T).await.unwrap();
    assert_eq!(answer, b"joined:secret");

    let other = ClusterCa::generate("other").unwrap();
    let wrong = JoinClient::new(other.fingerprint()).unwrap();
    let err = wrong.call(addr, b"secret", T).await.unwrap_err();
    assert!(matches!(err, RpcError::Refused { .. }), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "join never reaches the rpc handler"
    );
    joiner.close().await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_seed_from_another_ca_with_a_copied_ca_certificate_is_refused() {
    // The attacker sends the real CA certificate in its chain, but its own certificate was
    // signed by another CA: the pinned fingerprint matches, the signature does not.
    let ca = ClusterCa::generate("t").unwrap();
    let other = ClusterCa::generate("evil").unwrap();
    let fake = identity(&other, "seed");
    let material = TlsMaterial {
        cert_der: fake.cert_der().to_vec(),
        key_der: fake.key_pkcs8_der().unwrap(),
        ca_der: ca.cert_der().to_vec(),
    };
    let rpc = rpc_handler(|_p, r: Vec<u8>| async move { r });
    let join = join_handler(|_a, r: Vec<u8>| async move { r });
    let server = RpcServer::bind_with(
        loopback(),
        &material,
        ServerOptions::default(),
        rpc,
        Some(join),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let joiner = JoinClient::new(ca.fingerprint()).unwrap();
    let err = joiner.call(addr, b"secret", T).await.unwrap_err();
    assert!(matches!(err, RpcError::Refused { .. }), "{err}");
    server.shutdown().await;
}

#[tokio::test]
async fn join_alpn_is_closed_when_the_server_offers_no_join() {
    let ca = ClusterCa::generate("t").unwrap();
    let (server, addr, _) = echo_server(&identity(&ca, "seed"), ServerOptions::default(), false);
    let joiner = JoinClient::new(ca.fingerprint()).unwrap();
    assert!(joiner.call(addr, b"secret", T).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn waits_are_bounded() {
    let ca = ClusterCa::generate("t").unwrap();
    let server_id = identity(&ca, "server");
    let material = TlsMaterial::from_identity(&server_id).unwrap();
    let rpc = rpc_handler(|_peer, request: Vec<u8>| async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        request
    });
    let server =
        RpcServer::bind_with(loopback(), &material, ServerOptions::default(), rpc, None).unwrap();
    let addr = server.local_addr().unwrap();
    let client = RpcClient::new(&identity(&ca, "c")).unwrap();
    let limit = Duration::from_millis(300);

    let start = Instant::now();
    let err = client
        .call(addr, "server", b"slow", limit)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );

    // Nobody listening: bounded too.
    let silent = std::net::UdpSocket::bind(loopback()).unwrap();
    let nobody = silent.local_addr().unwrap();
    let start = Instant::now();
    let err = client
        .call(nobody, "server", b"x", limit)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout { .. }), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_server_name_is_refused_by_the_client() {
    let ca = ClusterCa::generate("t").unwrap();
    let (server, addr, calls) =
        echo_server(&identity(&ca, "server"), ServerOptions::default(), false);
    let client = RpcClient::new(&identity(&ca, "c")).unwrap();
    let err = client
        .call(addr, "someone-else", b"x", T)
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Refused { .. }), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    server.shutdown().await;
}

#[test]
fn material_debug_redacts_the_key() {
    let ca = ClusterCa::generate("t").unwrap();
    let material = TlsMaterial::from_identity(&identity(&ca, "n")).unwrap();
    let text = format!("{material:?}");
    assert!(text.contains("redacted"));
    assert!(!text.contains(&format!("{:?}", &material.key_der[..8])));
}

/// Waits (at most `T`) until the server's counters satisfy `done`, returning the last snapshot.
async fn stats_until(server: &RpcServer, done: impl Fn(&ServerStats) -> bool) -> ServerStats {
    let start = Instant::now();
    loop {
        let stats = server.stats().snapshot();
        if done(&stats) || start.elapsed() > T {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn junk_datagrams_are_counted_and_real_traffic_is_not() {
    let ca = ClusterCa::generate("t").unwrap();
    let (server, addr, _) = echo_server(&identity(&ca, "server"), ServerOptions::default(), true);
    let client = RpcClient::new(&identity(&ca, "c")).unwrap();
    assert_eq!(client.call(addr, "server", b"x", T).await.unwrap(), b"c:x");
    let joiner = JoinClient::new(ca.fingerprint()).unwrap();
    joiner.call(addr, b"secret", T).await.unwrap();
    let clean = server.stats().snapshot();
    assert!(clean.datagrams_in > 0, "{clean:?}");
    assert_eq!(clean.junk_datagrams, 0, "real QUIC is not junk: {clean:?}");
    assert_eq!(clean.handshakes_completed, 2, "{clean:?}");

    let socket = tokio::net::UdpSocket::bind(loopback()).await.unwrap();
    let junk: [&[u8]; 4] = [
        b"",
        b"GET / HTTP/1.0\r\n\r\n",
        &[0x40; 64], // a short header with an id this server never issued
        &[0xc0, 0xff, 0, 0, 0x1d, 8], // a long header of a draft version
    ];
    for datagram in junk {
        socket.send_to(datagram, addr).await.unwrap();
    }
    let stats = stats_until(&server, |s| s.junk_datagrams >= 4).await;
    assert_eq!(stats.junk_datagrams, 4, "{stats:?}");
    // Closing the join connection goes on in the background: at least the junk came in.
    assert!(stats.datagrams_in >= clean.datagrams_in + 4, "{stats:?}");
    assert_eq!(stats.handshakes_started, 2, "junk starts no handshake");
    // The server still serves.
    assert_eq!(client.call(addr, "server", b"y", T).await.unwrap(), b"c:y");
    server.shutdown().await;
}

#[tokio::test]
async fn tls_refusals_are_counted_by_side() {
    let ca = ClusterCa::generate("t").unwrap();
    let other = ClusterCa::generate("other").unwrap();
    let (server, addr, _) = echo_server(&identity(&ca, "server"), ServerOptions::default(), true);
    // A joiner whose token names another CA rejects the server's certificate.
    let wrong = JoinClient::new(other.fingerprint()).unwrap();
    assert!(wrong.call(addr, b"secret", T).await.is_err());
    let stats = stats_until(&server, |s| s.handshake_peer_rejected_tls >= 1).await;
    assert_eq!(stats.handshake_peer_rejected_tls, 1, "{stats:?}");
    // A node of another cluster (trusting ours) is rejected by the server.
    let foreign = identity(&other, "intruder");
    let material = TlsMaterial {
        cert_der: foreign.cert_der().to_vec(),
        key_der: foreign.key_pkcs8_der().unwrap(),
        ca_der: ca.cert_der().to_vec(),
    };
    let intruder = RpcClient::with_material(&material).unwrap();
    assert!(intruder.call(addr, "server", b"hi", T).await.is_err());
    let stats = stats_until(&server, |s| {
        s.handshake_rejected_peer_tls + s.connections_refused >= 1
    })
    .await;
    assert_eq!(
        (stats.handshake_rejected_peer_tls, stats.connections_refused),
        (1, 0),
        "{stats:?}"
    );
    assert_eq!(stats.junk_datagrams, 0, "{stats:?}");
    server.shutdown().await;
}
