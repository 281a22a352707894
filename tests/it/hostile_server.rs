//! Hostile peers (issue 12): clients that stall or lie to the server
//! (class 5), servers that lie to the client (class 6), and flags out of
//! range (class 8, `serve`, `infer`, `bench serve`).
//!
//! Servers run in their own thread and runtime; raw clients are blocking
//! `std` sockets with read timeouts, so every wait is bounded. Everything
//! stays on 127.0.0.1.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;

use std::time::{Duration, Instant};

use clap::Parser;
use selmask::cli::{Cli, Command};
use selmask_wire::artifact::{Artifact, ArtifactMask, MaskSpec, StoredDtype, read_artifact, write_artifact};
use selmask_wire::granularity::Granularity;
use selmask_wire::transfer::api::Listing;
use selmask_wire::transfer::client::{ClientConfig, fetch_split_blocking};
use selmask_wire::transfer::fixtures::{artifact_spec, dataset_section, random_cells, synthetic_set};
use selmask_wire::transfer::server::{ConnectionLimits, ServerConfig, ServerState};

use crate::fixtures::RunningServer;

/// Items of 1×28×28 u8 values, 64 of them in split `test`.
const SHAPE: [usize; 3] = [1, 28, 28];
const ITEMS: usize = 64;

/// A static artifact (pixel cells, Q = 0.1) for dataset `toy`.
fn toy_artifact(dir: &Path, mask: MaskSpec) -> Artifact {
    let spec = artifact_spec(dataset_section("toy", SHAPE, StoredDtype::U8), mask);
    write_artifact(dir, &spec, false).unwrap();
    read_artifact(dir).unwrap()
}

fn static_mask() -> MaskSpec {
    let layout = Granularity::Pixel.layout(SHAPE).unwrap();
    MaskSpec::Static {
        granularity: Granularity::Pixel,
        cells: random_cells(layout.n_cells(), 0.1, 3),
    }
}

/// A state serving `artifact` as `toy-static` over `ITEMS` test items.
fn toy_state(config: ServerConfig, artifact: &Artifact) -> ServerState {
    let mut state = ServerState::new(config);
    state
        .add_dataset("toy", [("test".to_string(), synthetic_set(SHAPE, ITEMS, StoredDtype::U8, 4))])
        .unwrap();
    state.add_artifact("toy-static", artifact).unwrap();
    state
}

/// Reads from `s` until the peer closes the connection; `None` if it is
/// still open after `within` (what arrived so far is dropped).
fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return None,
            // A reset is a close too (the server dropped unread input).
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return Some(got),
            Err(e) => panic!("reading: {e}"),
        }
    }
}

/// Sends `request` on a new connection and returns the whole answer, or
/// `None` if the connection is still open after `within`.
fn exchange(addr: SocketAddr, request: &[u8], within: Duration) -> Option<String> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    read_until_closed(&mut s, within).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Opens a connection and sends `bytes`, leaving it open.
fn stall(addr: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    s
}

const ITEMS_PATH: &str = "/v1/artifacts/toy-static/items/test";

fn post_head(content_length: u64) -> Vec<u8> {
    format!(
        "POST {ITEMS_PATH} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ncontent-length: {content_length}\r\n\r\n"
    )
    .into_bytes()
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n";

/// Class 5: bodies that never arrive hold no request slot, so `/health`
/// and item requests answer at once while they wait.
#[test]
fn health_and_items_answer_while_stalled_bodies_outnumber_the_request_slots() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = toy_artifact(&dir.path().join("a"), static_mask());
    let config = ServerConfig {
        max_concurrency: 4,
        request_timeout: Duration::from_secs(5),
        body_read_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let server = RunningServer::start_with(toy_state(config, &artifact), ConnectionLimits::default());
    // 16 heads announcing 100 bytes of body, 4 of them sent, then silence:
    // four times the request slots.
    let stalled: Vec<TcpStream> = (0..16)
        .map(|_| {
            let mut req = post_head(100);
            req.extend_from_slice(b"{\"ind");
            stall(server.addr, &req)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for (what, request) in [
        ("health", HEALTH.to_vec()),
        (
            "item",
            format!("GET {ITEMS_PATH}/3 HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").into_bytes(),
        ),
    ] {
        let t = Instant::now();
        let answer = exchange(server.addr, &request, Duration::from_secs(2))
            .unwrap_or_else(|| panic!("{what}: no answer within 2 s while 16 bodies stall"));
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert!(answer.starts_with("HTTP/1.1 200"), "{what}: {answer}");
        // Loopback answers in about a millisecond; 1 s leaves room for a
        // loaded test machine (the bench measures the real figure).
        assert!(ms < 1000.0, "{what} took {ms:.0} ms");
    }
    drop(stalled);
}

/// Class 5: a declared body over the limit is answered 413 at once,
/// without waiting for (or reading) the body; so is a chunked one that
/// grows past it.
#[test]
fn a_declared_body_over_the_limit_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = toy_artifact(&dir.path().join("a"), static_mask());
    let config = ServerConfig {
        max_body_bytes: 512,
        request_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let server = RunningServer::start_with(toy_state(config, &artifact), ConnectionLimits::default());
    let t = Instant::now();
    let answer = exchange(server.addr, &post_head(1_000_000_000), Duration::from_secs(2))
        .expect("a 1 GB content-length must be answered at once, not after the timeout");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("1000000000") && answer.contains("over the limit of 512 bytes"), "{answer}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    let mut chunked = format!(
        "POST {ITEMS_PATH} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 600, "1".repeat(600)).as_bytes());
    let answer = exchange(server.addr, &chunked, Duration::from_secs(2)).expect("a chunked body over the limit");
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("over the limit of 512 bytes"), "{answer}");
}

/// Class 5: a body that stops arriving gets a 408 and its connection is
/// closed; so are a half-sent head, a connection that sends nothing, one
/// idle after a request, and one that stops reading its response.
#[test]
fn stalled_half_sent_idle_and_unread_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = toy_artifact(&dir.path().join("a"), static_mask());
    let config = ServerConfig {
        body_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(20),
        ..ServerConfig::default()
    };
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(300),
        write_stall_timeout: Duration::from_millis(300),
        ..ConnectionLimits::default()
    };
    let server = RunningServer::start_with(toy_state(config, &artifact), limits);
    let within = Duration::from_secs(3);

    let mut body = stall(server.addr, &post_head(100));
    let answer = read_until_closed(&mut body, within).expect("a stalled body's connection must be closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("request body not received within 0.3 s"), "{answer}");

    let mut half = stall(server.addr, b"GET /health HTTP/1.1\r\nho");
    assert!(read_until_closed(&mut half, within).is_some(), "a half-sent head stays open");
    let mut silent = stall(server.addr, b"");
    assert!(read_until_closed(&mut silent, within).is_some(), "a silent connection stays open");
    let mut idle = stall(server.addr, b"GET /health HTTP/1.1\r\nhost: t\r\n\r\n");
    let answer = read_until_closed(&mut idle, within).expect("an idle keep-alive connection stays open");
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));

    // A client that asks for 25 MB and reads nothing: the server's writes
    // stop once the socket buffers are full (a few MB on loopback), and
    // after the stall timeout it drops the connection and the response.
    let big = [3, 256, 256];
    let mut state = ServerState::new(ServerConfig { max_body_bytes: 4096, ..ServerConfig::default() });
    state
        .add_dataset("toy", [("test".to_string(), synthetic_set(big, 128, StoredDtype::U8, 5))])
        .unwrap();
    let spec = artifact_spec(dataset_section("toy", big, StoredDtype::U8), MaskSpec::None);
    write_artifact(&dir.path().join("big"), &spec, false).unwrap();
    state.add_artifact("toy-static", &read_artifact(&dir.path().join("big")).unwrap()).unwrap();
    let server = RunningServer::start_with(state, limits);
    let indices: Vec<String> = (0..128).map(|i| i.to_string()).collect();
    let body = format!("{{\"indices\": [{}]}}", indices.join(","));
    let mut req = post_head(body.len() as u64);
    req.extend_from_slice(body.as_bytes());
    let mut unread = stall(server.addr, &req);
    std::thread::sleep(Duration::from_secs(2));
    let got = read_until_closed(&mut unread, within).expect("a connection that stopped reading stays open");
    let full = 128 * 3 * 256 * 256;
    assert!(got.len() < full, "the whole {full}-byte response was kept for a client that read nothing");
}

/// Class 5, the bench: `bench serve --stalled` holds stalled connections
/// (half mid-head, half mid-body), times `/health` and items beside them,
/// and sees the server close every stalled one by itself.
#[test]
fn the_stalled_clients_bench_answers_beside_stalled_connections_and_sees_them_closed() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = toy_artifact(&dir.path().join("a"), static_mask());
    let config = ServerConfig {
        max_concurrency: 4,
        body_read_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_millis(500),
        ..ConnectionLimits::default()
    };
    let r = selmask_wire::transfer::bench::stalled_clients_blocking(
        toy_state(config, &artifact),
        limits,
        "toy-static",
        "test",
        &selmask_wire::transfer::bench::StalledConfig { stalled: 40, probes: 5, max_seconds: 20.0 },
    )
    .unwrap();
    assert_eq!((r.stalled, r.probes, r.health_ok, r.item_ok), (40, 5, 5, 5), "{r:?}");
    assert!(r.health_max_ms < 1000.0 && r.item_max_ms < 1000.0, "{r:?}");
    assert_eq!(r.stalled_closed, 40, "{r:?}");
    assert!(r.last_closed_s < 2.5 && r.elapsed_s < 10.0, "{r:?}");
}

/// What the hostile server answers to item requests.
#[derive(Clone, Copy)]
enum Answer {
    /// A chunked body that never ends (bounded here by a time limit).
    Endless,
    /// `content-length: 10^12`, then a few bytes.
    Declared,
}

/// A hostile server on 127.0.0.1:0: `GET /v1/datasets` gets `listing` (or
/// an endless body when `listing` is `None`), everything else `answer`.
/// Each connection is served for at most 20 s.
fn hostile_server(listing: Option<String>, answer: Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { return };
            let listing = listing.clone();
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                    if s.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let start = Instant::now();
                let endless = |s: &mut TcpStream, content_type: &str| {
                    let h = format!("HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n");
                    if s.write_all(h.as_bytes()).is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n{}\r\n", 65536, "7".repeat(65536));
                    while start.elapsed() < Duration::from_secs(20) && s.write_all(chunk.as_bytes()).is_ok() {}
                };
                if head.starts_with("GET /v1/datasets ") {
                    match listing {
                        Some(l) => {
                            let r = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{l}",
                                l.len()
                            );
                            let _ = s.write_all(r.as_bytes());
                        }
                        None => endless(&mut s, "application/json"),
                    }
                    return;
                }
                match answer {
                    Answer::Endless => endless(&mut s, "application/vnd.selmask.items"),
                    Answer::Declared => {
                        let _ = s.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/vnd.selmask.items\r\ncontent-length: 1000000000000\r\n\r\nSLMX",
                        );
                        std::thread::sleep(Duration::from_secs(5));
                    }
                }
            });
        }
    });
    url
}

/// The listing a real server gives for `artifact`, changed by `edit`.
fn listing_json(artifact: &Artifact, edit: impl FnOnce(&mut Listing)) -> String {
    let mut listing = toy_state(ServerConfig::default(), artifact).listing_body();
    edit(&mut listing);
    serde_json::to_string(&listing).unwrap()
}

fn hostile_client(url: &str) -> ClientConfig {
    ClientConfig {
        base_url: url.to_string(),
        batch_size: 16,
        progress: false,
        labels: false,
        timeout: Duration::from_secs(15),
        ..ClientConfig::default()
    }
}

/// Class 6: an endless or oversized response is cut off at the size the
/// request implies, with an error naming the URL and the sizes.
#[test]
fn the_client_cuts_off_endless_and_oversized_responses_naming_the_url_and_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = toy_artifact(&dir.path().join("a"), static_mask());
    let ArtifactMask::Static { selected, .. } = &artifact.mask else { panic!("static") };
    // 16 items of the selected u8 values and the 20-byte header.
    let payload = 20 + 16 * selected.len();

    let url = hostile_server(Some(listing_json(&artifact, |_| {})), Answer::Endless);
    let t = Instant::now();
    let e = fetch_split_blocking(hostile_client(&url), "toy-static", &artifact, "test", None)
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}: {e}", t.elapsed());
    assert!(e.contains(&format!("{url}{ITEMS_PATH}")), "{e}");
    assert!(e.contains("more than") && e.contains(&payload.to_string()), "{e}");

    let url = hostile_server(Some(listing_json(&artifact, |_| {})), Answer::Declared);
    let e = fetch_split_blocking(hostile_client(&url), "toy-static", &artifact, "test", None)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&format!("{url}{ITEMS_PATH}")), "{e}");
    assert!(e.contains("1000000000000") && e.contains(&payload.to_string()), "{e}");

    let url = hostile_server(None, Answer::Endless);
    let t = Instant::now();
    let e = fetch_split_blocking(hostile_client(&url), "toy-static", &artifact, "test", None)
        .unwrap_err()
        .to_string();
    assert!(t.elapsed() < Duration::from_secs(5), "took {:?}: {e}", t.elapsed());
    assert!(e.contains(&format!("{url}/v1/datasets")) && e.contains("more than"), "{e}");
}

/// Class 6: the listing is checked against the local artifact and against
/// what the client can hold before anything is allocated for it.
#[test]
fn a_listing_that_disagrees_with_the_artifact_or_claims_absurd_sizes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let artifact = toy_artifact(&dir.path().join("a"), static_mask());
    let cases: [(&str, Box<dyn FnOnce(&mut Listing)>); 4] = [
        ("shape [1, 32, 32]", Box::new(|l: &mut Listing| l.datasets[0].shape = [1, 32, 32])),
        ("selected values", Box::new(|l: &mut Listing| l.artifacts[0].selected_values = Some(5))),
        // The wire names items with 32-bit indices.
        ("4294967296 items", Box::new(|l: &mut Listing| l.datasets[0].splits[0].items = 1 << 32)),
        // 10^9 items of 784 u8 values: 784 GB decoded, over the client's limit.
        ("1000000000 items", Box::new(|l: &mut Listing| l.datasets[0].splits[0].items = 1_000_000_000)),
    ];
    for (needle, edit) in cases {
        let url = hostile_server(Some(listing_json(&artifact, edit)), Answer::Endless);
        let config = ClientConfig { max_decoded_bytes: 1 << 30, ..hostile_client(&url) };
        let t = Instant::now();
        let e = fetch_split_blocking(config, "toy-static", &artifact, "test", None)
            .unwrap_err()
            .to_string();
        assert!(t.elapsed() < Duration::from_secs(2), "{needle}: took {:?}: {e}", t.elapsed());
        assert!(e.contains(&format!("{url}/v1/datasets")) && e.contains(needle), "{needle}: {e}");
    }
}

fn parse(args: &[&str]) -> Command {
    let mut all = vec!["selmask"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).unwrap_or_else(|e| panic!("{args:?}: {e}")).command
}

fn serve_error(extra: &[&str]) -> String {
    let mut args = vec!["serve", "--dataset", "mnist", "--artifact", "a"];
    args.extend_from_slice(extra);
    let Command::Serve(s) = parse(&args) else { panic!("serve") };
    match (s.server_config(), s.connection_limits()) {
        (Err(e), _) | (_, Err(e)) => e.to_string(),
        _ => panic!("{extra:?} accepted"),
    }
}

fn infer(extra: &[&str]) -> Box<selmask::cli::infer::InferArgs> {
    let mut args = vec!["infer", "--server", "http://127.0.0.1:1", "--artifact", "a"];
    args.extend_from_slice(extra);
    let Command::Infer(a) = parse(&args) else { panic!("infer") };
    a
}

fn infer_error(extra: &[&str]) -> String {
    let a = infer(extra);
    match (a.client_config(), a.item_limit()) {
        (Err(e), _) | (_, Err(e)) => e.to_string(),
        _ => panic!("{extra:?} accepted"),
    }
}

fn bench_error(extra: &[&str]) -> String {
    let mut args = vec!["bench", "serve"];
    args.extend_from_slice(extra);
    let Command::Bench(b) = parse(&args) else { panic!("bench") };
    match b.load_test_config() {
        Err(e) => e.to_string(),
        Ok(c) => panic!("{extra:?} accepted: {c:?}"),
    }
}

/// Class 8: durations, sizes, rates and counts out of range are refused
/// with the flag's name (no panic, no wrap-around), and the examples of
/// `--help` are accepted as written.
#[test]
fn out_of_range_flags_of_serve_infer_and_bench_serve_are_refused_by_name() {
    for (flags, needle) in [
        (&["--timeout-s", "1e300"][..], "timeout-s"),
        (&["--timeout-s", "NaN"], "timeout-s"),
        (&["--timeout-s", "0"], "timeout-s"),
        (&["--max-body-bytes", "0"], "max-body-bytes"),
        (&["--max-batch", "100000000"], "max-batch"),
        (&["--max-concurrency", "100000000"], "max-concurrency"),
        (&["--header-timeout-s", "inf"], "header-timeout-s"),
        (&["--body-timeout-s=-1"], "body-timeout-s"),
        (&["--max-connections", "0"], "max-connections"),
    ] {
        let e = serve_error(flags);
        assert!(e.contains(needle), "{flags:?}: {e}");
    }
    for (flags, needle) in [
        // Used to wrap to 0 items.
        (&["--limit", "4294967296"][..], "limit"),
        (&["--limit", "0"], "limit"),
        (&["--concurrency", "100000"], "concurrency"),
        (&["--batch-size", "100000000"], "batch-size"),
        (&["--bandwidth", "1B/s"], "bandwidth"),
        (&["--bandwidth", "0.0000001GB/s"], "bandwidth"),
        (&["--timeout-s", "1e300"], "timeout-s"),
    ] {
        let e = infer_error(flags);
        assert!(e.contains(needle), "{flags:?}: {e}");
    }
    // A malformed rate is refused by the parser (a typed flag), before
    // anything is read; a well-formed one below 1 kB/s by the check above.
    for bad in ["fast", "10 parsecs/s"] {
        let args = ["selmask", "infer", "--server", "http://127.0.0.1:1", "--artifact", "a", "--bandwidth", bad];
        let e = Cli::try_parse_from(args).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("--bandwidth") && e.contains(&format!("invalid bandwidth '{bad}'")), "{bad}: {e}");
    }
    for (flags, needle) in [
        (&["--max-seconds", "inf"][..], "max-seconds"),
        (&["--max-seconds", "1e300"], "max-seconds"),
        (&["--requests", "0"], "requests"),
        (&["--concurrency", "100000"], "concurrency"),
        (&["--items-per-request", "100000000"], "items-per-request"),
        (&["--stalled", "100000000"], "stalled"),
    ] {
        let e = bench_error(flags);
        assert!(e.contains(needle), "{flags:?}: {e}");
    }
    // The examples of `infer --help`, as written there.
    for (example, bytes_per_s) in [("10MB/s", 10e6), ("100Mbit/s", 12.5e6)] {
        let c = infer(&["--bandwidth", example]).client_config().unwrap();
        assert_eq!(c.bandwidth.map(|b| b.bytes_per_s()), Some(bytes_per_s), "{example}");
    }
    let c = infer(&["--limit", "4294967295"]);
    assert_eq!(c.item_limit().unwrap(), Some(4_294_967_295));
}
