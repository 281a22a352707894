//! Server and client tests: every endpoint and every 4xx through `oneshot`
//! (no socket), then real round trips on 127.0.0.1:0 with the client,
//! including the byte bound `1.01 · Q · raw + 20 · requests` with no slack.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use selmask_wire::error::Error;
use selmask_wire::transfer::bench::{self, LoadTestConfig, PackBenchConfig};
use selmask::data::{ImageSet, Pixels};
use selmask_wire::artifact::{Artifact, ArtifactMask, MaskSpec, StoredDtype, read_artifact, write_artifact};
use selmask_wire::transfer::fixtures::{artifact_spec, dataset_section, random_cells, synthetic_set};
use selmask_wire::granularity::{CellLayout, Granularity};
use selmask_wire::transfer::api::{ErrorBody, LabelsResponse, Listing};
use selmask_wire::transfer::bandwidth::Bandwidth;
use selmask_wire::transfer::client::{ClientConfig, TransferClient};
use selmask_wire::transfer::codec::{self, Selection, StaticPlan};
use selmask_wire::transfer::server::{DynamicMasker, MaskerError, ServerConfig, ServerState, router, serve};
use tower::ServiceExt;

const SHAPE: [usize; 3] = [3, 32, 32];

/// Cell on where any of its normalised values is above the mean.
struct BrightCells;

impl DynamicMasker for BrightCells {
    fn cell_mask(&self, item: &[f32], layout: &CellLayout) -> Result<Vec<bool>, MaskerError> {
        let mut on = vec![false; layout.n_cells()];
        for (v, &cell) in item.iter().zip(&layout.cell_of_value) {
            on[cell] |= *v > 0.0;
        }
        Ok(on)
    }
}

struct Panics;

impl DynamicMasker for Panics {
    fn cell_mask(&self, _: &[f32], _: &CellLayout) -> Result<Vec<bool>, MaskerError> {
        panic!("mask model exploded")
    }
}

struct Slow;

impl DynamicMasker for Slow {
    fn cell_mask(&self, item: &[f32], layout: &CellLayout) -> Result<Vec<bool>, MaskerError> {
        std::thread::sleep(Duration::from_millis(800));
        BrightCells.cell_mask(item, layout)
    }
}

/// Artifacts are written to a temporary directory and read back; the
/// server only needs them in memory, so the directory is gone afterwards.
struct Fixture {
    test: ImageSet,
    static_art: Artifact,
    none_art: Artifact,
    dyn_art: Artifact,
}

fn test_config() -> ServerConfig {
    ServerConfig {
        max_batch: 64,
        max_body_bytes: 512,
        max_response_bytes: 100_000,
        ..ServerConfig::default()
    }
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let ds = dataset_section("toy", SHAPE, StoredDtype::U8);
    let layout = Granularity::Pixel.layout(SHAPE).unwrap();
    let write = |name: &str, mask: MaskSpec| {
        let dir = tmp.path().join(name);
        write_artifact(&dir, &artifact_spec(ds.clone(), mask), false).unwrap();
        read_artifact(&dir).unwrap()
    };
    let static_art = write(
        "static",
        MaskSpec::Static {
            granularity: Granularity::Pixel,
            cells: random_cells(layout.n_cells(), 0.25, 3),
        },
    );
    let none_art = write("none", MaskSpec::None);
    let dyn_art = write(
        "dyn",
        MaskSpec::Dynamic {
            granularity: Granularity::Pixel,
            q: 0.2,
            bytes_fraction: 0.2,
            mask_model: Default::default(),
        },
    );
    Fixture {
        test: synthetic_set(SHAPE, 40, StoredDtype::U8, 9),
        static_art,
        none_art,
        dyn_art,
    }
}

fn state(f: &Fixture, config: ServerConfig) -> ServerState {
    let mut s = ServerState::new(config);
    s.add_dataset(
        "toy",
        [
            ("test".to_string(), f.test.clone()),
            ("train".to_string(), synthetic_set(SHAPE, 10, StoredDtype::U8, 10)),
        ],
    )
    .unwrap();
    s.add_artifact("toy-static", &f.static_art).unwrap();
    s.add_artifact("toy-none", &f.none_art).unwrap();
    s.add_dynamic_artifact("toy-dyn", &f.dyn_art, Arc::new(BrightCells))
        .unwrap();
    s.add_dynamic_artifact("toy-panic", &f.dyn_art, Arc::new(Panics))
        .unwrap();
    s
}

fn app(f: &Fixture) -> Router {
    router(Arc::new(state(f, test_config())))
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    (status, headers, body.to_vec())
}

fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).body(Body::empty()).unwrap()
}

fn post(uri: &str, content_type: Option<&str>, body: impl Into<String>) -> Request<Body> {
    let mut b = Request::builder().method("POST").uri(uri);
    if let Some(ct) = content_type {
        b = b.header(header::CONTENT_TYPE, ct);
    }
    b.body(Body::from(body.into())).unwrap()
}

/// Asserts a JSON error of `status` whose message contains every `needle`.
async fn expect_error(app: &Router, req: Request<Body>, status: StatusCode, needles: &[&str]) {
    let (s, h, body) = call(app, req).await;
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(s, status, "{text}");
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json", "{text}");
    let e: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| panic!("not an error body: {text}"));
    for n in needles {
        assert!(e.error.contains(n), "'{n}' not in '{}'", e.error);
    }
}

fn static_selection(a: &Artifact) -> Selection {
    Selection::for_artifact(a).unwrap()
}

fn item_u8(set: &ImageSet, i: usize) -> &[u8] {
    let n = set.item_len();
    match &set.pixels {
        Pixels::U8(v) => &v[i * n..(i + 1) * n],
        Pixels::F32(_) => panic!("u8 fixture"),
    }
}

#[tokio::test]
async fn health_and_listing() {
    let f = fixture();
    let app = app(&f);
    let (s, _, body) = call(&app, get("/health")).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, br#"{"status":"ok"}"#.as_slice()));
    let (s, _, body) = call(&app, get("/v1/datasets")).await;
    assert_eq!(s, StatusCode::OK);
    let l: Listing = serde_json::from_slice(&body).unwrap();
    assert_eq!(l.datasets.len(), 1);
    assert_eq!(l.datasets[0].shape, SHAPE);
    let splits: Vec<(&str, usize)> = l.datasets[0]
        .splits
        .iter()
        .map(|s| (s.name.as_str(), s.items))
        .collect();
    assert_eq!(splits, [("test", 40), ("train", 10)]);
    let ids: Vec<&str> = l.artifacts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["toy-dyn", "toy-none", "toy-panic", "toy-static"]);
    let st = l.artifacts.iter().find(|a| a.id == "toy-static").unwrap();
    assert_eq!((st.q, st.bytes_fraction, st.selected_values), (0.25, 0.25, Some(768)));
    assert_eq!(st.manifest_sha256, f.static_art.manifest_sha256);
    assert_eq!((l.limits.max_batch, l.wire.version, l.wire.header_bytes), (64, 2, 20));
    // No per-item prefix any more: the field is gone from the listing.
    let raw: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(raw["wire"].get("item_prefix_bytes").is_none(), "{}", raw["wire"]);
}

#[tokio::test]
async fn get_one_item() {
    let f = fixture();
    let app = app(&f);
    let (s, h, body) = call(&app, get("/v1/artifacts/toy-static/items/test/7")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), codec::CONTENT_TYPE);
    assert!(h.get(header::CONTENT_ENCODING).is_none());
    assert_eq!(
        body.len(),
        codec::HEADER_BYTES + 768,
        "exactly header + n_selected: no index, no label"
    );
    assert_eq!(body[4], 2, "wire version 2");
    let sel = static_selection(&f.static_art);
    let d = codec::unpack(&body, &sel, &[7]).unwrap();
    assert_eq!(d.indices, vec![7]);
    assert!(d.labels.is_empty(), "labels come from their own endpoint");
    let Selection::Static(plan) = &sel else { panic!() };
    let Pixels::U8(dense) = &d.values else { panic!() };
    let src = item_u8(&f.test, 7);
    for (v, (&got, &want)) in dense.iter().zip(src).enumerate() {
        let sent = plan.selected().binary_search(&(v as u32)).is_ok();
        assert_eq!(got, if sent { want } else { 0 }, "value {v}");
    }
}

#[tokio::test]
async fn post_a_batch_plain_and_zstd() {
    let f = fixture();
    let app = app(&f);
    let uri = "/v1/artifacts/toy-static/items/test";
    let (s, _, plain) = call(
        &app,
        post(uri, Some("application/json"), r#"{"indices": [3, 0, 3, 39]}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(plain.len(), codec::HEADER_BYTES + 4 * 768);
    let d = codec::unpack(&plain, &static_selection(&f.static_art), &[3, 0, 3, 39]).unwrap();
    assert_eq!(d.indices, vec![3, 0, 3, 39]);
    // Order and duplicates kept: item k holds the values of the k-th index.
    let Pixels::U8(dense) = &d.values else { panic!() };
    let Selection::Static(plan) = static_selection(&f.static_art) else {
        panic!()
    };
    let n = f.test.item_len();
    for (k, &i) in [3usize, 0, 3, 39].iter().enumerate() {
        for &v in plan.selected() {
            let v = v as usize;
            assert_eq!(dense[k * n + v], item_u8(&f.test, i)[v], "item {k}, value {v}");
        }
    }
    let mut req = post(
        uri,
        Some("application/json; charset=utf-8"),
        r#"{"indices": [3, 0, 3, 39]}"#,
    );
    req.headers_mut()
        .insert(header::ACCEPT_ENCODING, "gzip, zstd".parse().unwrap());
    let (s, h, packed) = call(&app, req).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h.get(header::CONTENT_ENCODING).unwrap(), "zstd");
    assert!(packed.len() < plain.len());
    assert_eq!(zstd::bulk::decompress(&packed, 1 << 20).unwrap(), plain);
    // An empty batch is a valid, empty payload.
    let (s, _, empty) = call(&app, post(uri, Some("application/json"), r#"{"indices": []}"#)).await;
    assert_eq!((s, empty.len()), (StatusCode::OK, codec::HEADER_BYTES));
}

#[tokio::test]
async fn dynamic_items_carry_the_maskers_cells() {
    let f = fixture();
    let app = app(&f);
    let (s, _, body) = call(&app, get("/v1/artifacts/toy-dyn/items/test/5")).await;
    assert_eq!(s, StatusCode::OK);
    let ArtifactMask::Dynamic { layout, .. } = &f.dyn_art.mask else {
        panic!()
    };
    let d = codec::unpack(&body, &Selection::Dynamic(layout.clone()), &[5]).unwrap();
    let one = f.test.subset(&[5]);
    let normalised = one.normalised(&selmask::data::DatasetInfo {
        name: selmask::data::DatasetName::Synthetic,
        shape: SHAPE,
        n_classes: 10,
        mean: vec![0.1307; 3],
        std: vec![0.3081; 3],
    });
    let want = BrightCells.cell_mask(&normalised, layout).unwrap();
    assert_eq!(d.cell_masks.as_deref().unwrap(), want.as_slice());
    assert!(
        want.iter().any(|&b| b) && want.iter().any(|&b| !b),
        "fixture selects some cells, not all"
    );
}

#[tokio::test]
async fn every_4xx_names_the_problem_and_the_server_keeps_serving() {
    let f = fixture();
    let app = app(&f);
    let json = Some("application/json");
    use StatusCode as S;
    expect_error(
        &app,
        get("/v1/artifacts/nope/items/test/0"),
        S::NOT_FOUND,
        &["unknown artifact 'nope'", "toy-static"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/toy-static/items/val/0"),
        S::NOT_FOUND,
        &["unknown split 'val'", "test, train"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/toy-static/items/test/40"),
        S::NOT_FOUND,
        &["item index 40 out of range", "40 items"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/toy-static/items/test/99999999999999999999"),
        S::BAD_REQUEST,
        &["'99999999999999999999'"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/toy-static/items/test/abc"),
        S::BAD_REQUEST,
        &["invalid item index 'abc'"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/toy-static/items/test/-1"),
        S::BAD_REQUEST,
        &["'-1'"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/..%2F..%2Fetc/items/test/0"),
        S::BAD_REQUEST,
        &["invalid artifact id '../../etc'"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/../items/test/0"),
        S::BAD_REQUEST,
        &["invalid artifact id '..'"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/toy-static/items/..%2Ftest/0"),
        S::BAD_REQUEST,
        &["invalid split '../test'"],
    )
    .await;
    expect_error(
        &app,
        get("/v1/artifacts/a%00b/items/test/0"),
        S::BAD_REQUEST,
        &["invalid artifact id"],
    )
    .await;
    let batch = "/v1/artifacts/toy-static/items/test";
    expect_error(
        &app,
        post(batch, json, "{\"indices\": [1, 2"),
        S::BAD_REQUEST,
        &["malformed json body", "EOF"],
    )
    .await;
    expect_error(
        &app,
        post(batch, json, r#"{"indices": [1, -2]}"#),
        S::BAD_REQUEST,
        &["malformed json body", "-2"],
    )
    .await;
    expect_error(
        &app,
        post(batch, json, r#"{"indices": [1], "extra": 1}"#),
        S::BAD_REQUEST,
        &["unknown field `extra`"],
    )
    .await;
    expect_error(
        &app,
        post(batch, json, r#"{"indices": [1, 41]}"#),
        S::NOT_FOUND,
        &["item index 41 out of range"],
    )
    .await;
    expect_error(
        &app,
        post(batch, Some("text/plain"), r#"{"indices": [1]}"#),
        S::UNSUPPORTED_MEDIA_TYPE,
        &["'text/plain'"],
    )
    .await;
    expect_error(
        &app,
        post(batch, None, r#"{"indices": [1]}"#),
        S::UNSUPPORTED_MEDIA_TYPE,
        &["'(none)'"],
    )
    .await;
    let many = format!("{{\"indices\": [{}]}}", vec!["0"; 65].join(","));
    expect_error(
        &app,
        post(batch, json, many),
        S::PAYLOAD_TOO_LARGE,
        &["batch of 65 indices over the limit of 64"],
    )
    .await;
    let big = format!("{{\"indices\": [0]{}}}", " ".repeat(600));
    expect_error(
        &app,
        post(batch, json, big),
        S::PAYLOAD_TOO_LARGE,
        &["over the limit of 512 bytes"],
    )
    .await;
    let full = format!("{{\"indices\": [{}]}}", vec!["1"; 40].join(","));
    expect_error(
        &app,
        post("/v1/artifacts/toy-none/items/test", json, full),
        S::PAYLOAD_TOO_LARGE,
        &["122900 bytes", "100000"], // 20 + 40 · 3072
    )
    .await;
    expect_error(
        &app,
        get("/v1/nothing"),
        S::NOT_FOUND,
        &["no route for GET /v1/nothing"],
    )
    .await;
    expect_error(
        &app,
        post("/health", json, "{}"),
        S::METHOD_NOT_ALLOWED,
        &["method POST not allowed"],
    )
    .await;
    // A failing mask model is a generic, logged 500.
    expect_error(
        &app,
        get("/v1/artifacts/toy-panic/items/test/0"),
        S::INTERNAL_SERVER_ERROR,
        &["internal server error"],
    )
    .await;
    // Still serving.
    let (s, _, _) = call(&app, get("/health")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, body) = call(&app, get("/v1/artifacts/toy-static/items/test/1")).await;
    assert_eq!((s, body.len()), (StatusCode::OK, codec::HEADER_BYTES + 768));
}

#[tokio::test]
async fn labels_come_from_their_own_endpoint() {
    let f = fixture();
    let app = app(&f);
    let uri = "/v1/datasets/toy/labels/test";
    let (s, h, body) = call(
        &app,
        post(uri, Some("application/json"), r#"{"indices": [3, 0, 3, 39]}"#),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(h.get(header::CONTENT_TYPE).unwrap(), "application/json");
    let got: LabelsResponse = serde_json::from_slice(&body).unwrap();
    let t = &f.test.labels;
    assert_eq!(got.labels, vec![t[3], t[0], t[3], t[39]], "order and duplicates kept");
    let (s, _, body) = call(&app, post(uri, Some("application/json"), r#"{"indices": []}"#)).await;
    assert_eq!((s, body.as_slice()), (StatusCode::OK, br#"{"labels":[]}"#.as_slice()));
    // Other splits of the dataset, whatever artifact serves it.
    let (s, _, body) = call(
        &app,
        post(
            "/v1/datasets/toy/labels/train",
            Some("application/json"),
            r#"{"indices": [9]}"#,
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let got: LabelsResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        got.labels,
        vec![synthetic_set(SHAPE, 10, StoredDtype::U8, 10).labels[9]]
    );
}

#[tokio::test]
async fn every_4xx_of_the_labels_endpoint_names_the_problem_and_the_server_keeps_serving() {
    let f = fixture();
    let app = app(&f);
    let json = Some("application/json");
    let ok = r#"{"indices": [1]}"#;
    use StatusCode as S;
    let labels = "/v1/datasets/toy/labels/test";
    expect_error(
        &app,
        post("/v1/datasets/..%2F..%2Fetc/labels/test", json, ok),
        S::BAD_REQUEST,
        &["invalid dataset '../../etc'"],
    )
    .await;
    expect_error(
        &app,
        post("/v1/datasets/a%00b/labels/test", json, ok),
        S::BAD_REQUEST,
        &["invalid dataset"],
    )
    .await;
    expect_error(
        &app,
        post("/v1/datasets/toy/labels/..%2Ftest", json, ok),
        S::BAD_REQUEST,
        &["invalid split '../test'"],
    )
    .await;
    expect_error(
        &app,
        post("/v1/datasets/nope/labels/test", json, ok),
        S::NOT_FOUND,
        &["unknown dataset 'nope'", "served: toy"],
    )
    .await;
    expect_error(
        &app,
        post("/v1/datasets/toy/labels/val", json, ok),
        S::NOT_FOUND,
        &["unknown split 'val'", "test, train"],
    )
    .await;
    expect_error(
        &app,
        post(labels, json, r#"{"indices": [1, 40]}"#),
        S::NOT_FOUND,
        &["item index 40 out of range for split 'test'", "40 items"],
    )
    .await;
    let many = format!("{{\"indices\": [{}]}}", vec!["0"; 65].join(","));
    expect_error(
        &app,
        post(labels, json, many),
        S::PAYLOAD_TOO_LARGE,
        &["batch of 65 indices over the limit of 64"],
    )
    .await;
    let big = format!("{{\"indices\": [0]{}}}", " ".repeat(600));
    expect_error(
        &app,
        post(labels, json, big),
        S::PAYLOAD_TOO_LARGE,
        &["over the limit of 512 bytes"],
    )
    .await;
    expect_error(
        &app,
        post(labels, Some("text/plain"), ok),
        S::UNSUPPORTED_MEDIA_TYPE,
        &["'text/plain'"],
    )
    .await;
    expect_error(&app, post(labels, None, ok), S::UNSUPPORTED_MEDIA_TYPE, &["'(none)'"]).await;
    expect_error(
        &app,
        post(labels, json, "{\"indices\": [1, 2"),
        S::BAD_REQUEST,
        &["malformed json body", "EOF"],
    )
    .await;
    expect_error(
        &app,
        post(labels, json, r#"{"indices": [1, -2]}"#),
        S::BAD_REQUEST,
        &["malformed json body", "-2"],
    )
    .await;
    expect_error(
        &app,
        post(labels, json, r#"{"indices": [1], "extra": 1}"#),
        S::BAD_REQUEST,
        &["unknown field `extra`"],
    )
    .await;
    expect_error(
        &app,
        get(labels),
        S::METHOD_NOT_ALLOWED,
        &["method GET not allowed for /v1/datasets/toy/labels/test"],
    )
    .await;
    expect_error(
        &app,
        post("/v1/datasets/toy/labels", json, ok),
        S::NOT_FOUND,
        &["no route for POST /v1/datasets/toy/labels"],
    )
    .await;
    // Still serving, labels and payloads alike.
    let (s, _, _) = call(&app, get("/health")).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, body) = call(&app, post(labels, json, r#"{"indices": [39]}"#)).await;
    assert_eq!(s, StatusCode::OK);
    let got: LabelsResponse = serde_json::from_slice(&body).unwrap();
    assert_eq!(got.labels, vec![f.test.labels[39]]);
    let (s, _, body) = call(&app, get("/v1/artifacts/toy-static/items/test/1")).await;
    assert_eq!((s, body.len()), (StatusCode::OK, codec::HEADER_BYTES + 768));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_requests_time_out() {
    let f = fixture();
    let mut s = state(
        &f,
        ServerConfig {
            request_timeout: Duration::from_millis(200),
            ..test_config()
        },
    );
    s.add_dynamic_artifact("toy-slow", &f.dyn_art, Arc::new(Slow)).unwrap();
    let app = router(Arc::new(s));
    expect_error(
        &app,
        get("/v1/artifacts/toy-slow/items/test/0"),
        StatusCode::REQUEST_TIMEOUT,
        &["timed out after 0.2 s"],
    )
    .await;
    let (st, _, _) = call(&app, get("/health")).await;
    assert_eq!(st, StatusCode::OK);
}

#[test]
fn setup_rejects_bad_names_and_mismatches() {
    let f = fixture();
    let mut s = state(&f, test_config());
    for (id, want) in [("../x", "plain name"), ("toy-static", "already in use")] {
        let e = s.add_artifact(id, &f.static_art).unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    assert!(
        s.add_artifact("d2", &f.dyn_art)
            .unwrap_err()
            .to_string()
            .contains("add_dynamic_artifact")
    );
    let mut other = ServerState::new(test_config());
    let e = other.add_artifact("x", &f.static_art).unwrap_err().to_string();
    assert!(e.contains("dataset 'toy' was not added"), "{e}");
    other
        .add_dataset(
            "toy",
            [("test".to_string(), synthetic_set([1, 32, 32], 2, StoredDtype::U8, 1))],
        )
        .unwrap();
    assert!(
        other
            .add_artifact("x", &f.static_art)
            .unwrap_err()
            .to_string()
            .contains("made for [3, 32, 32]")
    );
}

/// Starts the fixture's server on 127.0.0.1:0; returns its URL, a stop
/// handle and the task.
async fn start(
    f: &Fixture,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    start_app(app(f)).await
}

/// Starts `app` on 127.0.0.1:0.
async fn start_app(
    app: Router,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), Error>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, app, async move {
        let _ = rx.await;
    }));
    (url, tx, task)
}

fn client(url: &str, zstd: bool, bandwidth: Option<&str>) -> TransferClient {
    TransferClient::new(ClientConfig {
        base_url: url.to_string(),
        batch_size: 16,
        concurrency: 2,
        zstd,
        bandwidth: bandwidth.map(|b| b.parse::<Bandwidth>().unwrap()),
        progress: false,
        ..ClientConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_round_trip_over_loopback() {
    let f = fixture();
    let (url, stop, task) = start(&f).await;

    // Plain: decoded inputs are the stored values at selected positions, 0 elsewhere.
    let plain = client(&url, false, None)
        .fetch_split("toy-static", &f.static_art, "test", None)
        .await
        .unwrap();
    let st = &plain.stats;
    assert_eq!((st.items, st.requests), (40, 3));
    assert_eq!(plain.batch.indices, (0..40).collect::<Vec<u32>>());
    // Labels from their endpoint, for the same batches, counted apart.
    assert_eq!(plain.batch.labels, f.test.labels);
    assert_eq!(st.label_requests, 3);
    assert!(st.label_bytes > 0 && st.label_http_header_bytes > 0, "{st:?}");
    let Selection::Static(plan) = &plain.selection else {
        panic!()
    };
    let Pixels::U8(dense) = &plain.batch.values else {
        panic!()
    };
    let n = f.test.item_len();
    for k in 0..40 {
        let src = item_u8(&f.test, k);
        let mut want = vec![0u8; n];
        for &i in plan.selected() {
            want[i as usize] = src[i as usize];
        }
        assert_eq!(&dense[k * n..(k + 1) * n], &want[..], "item {k}");
    }
    // Byte accounting: exactly the documented layout (labels not in it),
    // and within the bound 1.01 · Q · raw + 20 · requests, nothing added.
    let q = f.static_art.manifest.mask.bytes_fraction;
    assert_eq!(st.full_bytes, 40 * 3072);
    assert_eq!(st.wire_bytes, (3 * codec::HEADER_BYTES + 40 * 768) as u64);
    assert_eq!(st.payload_bytes, st.wire_bytes);
    assert!(
        st.wire_bytes as f64 <= 1.01 * q * st.full_bytes as f64 + 20.0 * st.requests as f64,
        "{st:?}"
    );
    assert!(st.http_header_bytes > 0 && st.items_per_s > 0.0);

    // The network input: normalised where sent, exactly 0 elsewhere.
    let x = plain.network_input(&f.static_art).unwrap();
    let sent = plan.selected()[0] as usize;
    let unsent = (0..n)
        .find(|i| plan.selected().binary_search(&(*i as u32)).is_err())
        .unwrap();
    assert_eq!(x[unsent], 0.0);
    let want = (item_u8(&f.test, 0)[sent] as f32 / 255.0 - 0.1307) / 0.3081;
    assert!((x[sent] - want).abs() < 1e-5);

    // zstd: strictly fewer wire bytes, same items.
    let z = client(&url, true, None)
        .fetch_split("toy-static", &f.static_art, "test", None)
        .await
        .unwrap();
    assert!(
        z.stats.wire_bytes < st.wire_bytes,
        "{} vs {}",
        z.stats.wire_bytes,
        st.wire_bytes
    );
    assert_eq!(z.stats.payload_bytes, st.wire_bytes);
    assert_eq!(z.batch, plain.batch);

    // Without labels: same payloads, no label request, empty labels.
    let no_labels = TransferClient::new(ClientConfig {
        labels: false,
        ..client(&url, false, None).config().clone()
    })
    .unwrap()
    .fetch_split("toy-static", &f.static_art, "test", None)
    .await
    .unwrap();
    let nl = &no_labels.stats;
    assert!(no_labels.batch.labels.is_empty());
    assert_eq!(
        (nl.label_requests, nl.label_bytes, nl.label_http_header_bytes),
        (0, 0, 0)
    );
    assert_eq!(
        (nl.wire_bytes, &no_labels.batch.values),
        (st.wire_bytes, &plain.batch.values)
    );
    assert!(no_labels.batch.clone().into_image_set().is_err());
    assert_eq!(plain.batch.clone().into_image_set().unwrap().labels, f.test.labels);

    // A subset, in the order asked for.
    let some = client(&url, false, None)
        .fetch_split("toy-static", &f.static_art, "test", Some(vec![39, 2, 2]))
        .await
        .unwrap();
    assert_eq!(some.batch.indices, vec![39, 2, 2]);
    let t = &f.test.labels;
    assert_eq!(some.batch.labels, vec![t[39], t[2], t[2]]);

    // Simulated link: received bytes / elapsed never above the bandwidth.
    let bw = 100_000.0;
    let slow = client(&url, false, Some("100kB/s"))
        .fetch_split("toy-static", &f.static_art, "test", None)
        .await
        .unwrap();
    let s = &slow.stats;
    assert!(s.wire_bytes as f64 / s.elapsed_s <= bw, "{s:?}");
    assert!(
        s.elapsed_s >= (s.wire_bytes + s.http_header_bytes) as f64 / bw * 0.999,
        "{s:?}"
    );
    assert_eq!(s.bandwidth_limit_bytes_per_s, Some(bw));

    // Dynamic, through the client.
    let d = client(&url, false, None)
        .fetch_split("toy-dyn", &f.dyn_art, "test", None)
        .await
        .unwrap();
    let masks = d.batch.cell_masks.as_deref().unwrap();
    let ArtifactMask::Dynamic { layout, .. } = &f.dyn_art.mask else {
        panic!()
    };
    assert_eq!(masks.len(), 40 * layout.n_cells());
    assert_eq!(d.batch.labels, f.test.labels);
    // Dynamic bound: the values sent, the header per request and the mask
    // bits per item, exactly.
    let sent_values: usize = masks
        .chunks_exact(layout.n_cells())
        .map(|m| layout.cell_of_value.iter().filter(|&&c| m[c]).count())
        .sum();
    let ds = &d.stats;
    let bits = layout.n_cells().div_ceil(8);
    assert_eq!(
        ds.wire_bytes as usize,
        20 * ds.requests + bits * ds.items + sent_values,
        "{ds:?}"
    );
    let sent_fraction = sent_values as f64 / ds.full_bytes as f64;
    assert!(
        ds.wire_bytes as f64
            <= 1.01 * sent_fraction * ds.full_bytes as f64 + 20.0 * ds.requests as f64 + (bits * ds.items) as f64,
        "{ds:?}"
    );
    let x = d.network_input(&f.dyn_art).unwrap();
    for (v, &cell) in layout.cell_of_value.iter().enumerate().take(n) {
        if !masks[cell] {
            assert_eq!(x[v], 0.0);
        }
    }
    assert!(d.stats.wire_bytes < d.stats.full_bytes);

    // The client refuses an artifact the server does not serve as this id.
    let e = client(&url, false, None)
        .fetch_split("toy-static", &f.none_art, "test", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Mismatch { reason, .. } if reason.contains("differs from the local one")),
        "{e}"
    );
    // Server errors reach the caller with their message.
    let sel = Selection::Static(StaticPlan::new(SHAPE, plan.selected().to_vec()).unwrap());
    let e = client(&url, false, None)
        .fetch_batch("toy-static", "val", &[0], &sel)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Status { status: 404, message, .. } if message.contains("unknown split 'val'")),
        "{e}"
    );
    let e = client(&url, false, None)
        .fetch_labels("toy", "test", &[40])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Status { status: 404, message, .. } if message.contains("item index 40")),
        "{e}"
    );
    assert_eq!(
        client(&url, false, None)
            .fetch_labels("toy", "test", &[1, 0])
            .await
            .unwrap(),
        vec![f.test.labels[1], f.test.labels[0]]
    );

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// The acceptance criterion on Fashion-MNIST's shape at Q = 0.05 (41 of
/// 784 u8 values per item): `wire_bytes <= 1.01 · bytes_fraction ·
/// full_bytes + 20 · requests`, with no other term, whatever the batch size
/// (version 1's 6 bytes per item were 15 % and broke it); zstd is strictly
/// smaller on these dark-background images.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_bound_holds_with_only_the_header_per_request() {
    let shape = [1, 28, 28];
    let tmp = tempfile::tempdir().unwrap();
    let layout = Granularity::Pixel.layout(shape).unwrap();
    let spec = artifact_spec(
        dataset_section("fmnist", shape, StoredDtype::U8),
        MaskSpec::Static {
            granularity: Granularity::Pixel,
            cells: random_cells(layout.n_cells(), 41.0 / 784.0, 17),
        },
    );
    let dir = tmp.path().join("fmnist-q05");
    write_artifact(&dir, &spec, false).unwrap();
    let art = read_artifact(&dir).unwrap();
    let test = synthetic_set(shape, 1000, StoredDtype::U8, 23);
    let mut s = ServerState::new(ServerConfig::default());
    s.add_dataset("fmnist", [("test".to_string(), test.clone())]).unwrap();
    s.add_artifact("fmnist-q05", &art).unwrap();
    let (url, stop, task) = start_app(router(Arc::new(s))).await;

    let bf = art.manifest.mask.bytes_fraction;
    assert_eq!(bf, 41.0 / 784.0);
    for (batch, zstd) in [(1, false), (100, false), (256, false), (1000, false), (256, true)] {
        let c = TransferClient::new(ClientConfig {
            base_url: url.clone(),
            batch_size: batch,
            concurrency: 4,
            zstd,
            progress: false,
            ..ClientConfig::default()
        })
        .unwrap();
        let got = c.fetch_split("fmnist-q05", &art, "test", None).await.unwrap();
        let st = &got.stats;
        assert_eq!(got.batch.labels, test.labels);
        assert_eq!((st.items, st.full_bytes), (1000, 784_000));
        assert_eq!(st.requests, 1000usize.div_ceil(batch));
        let bound = 1.01 * bf * st.full_bytes as f64 + 20.0 * st.requests as f64;
        assert!(
            st.wire_bytes as f64 <= bound,
            "batch {batch}: {} > {bound}",
            st.wire_bytes
        );
        assert_eq!(st.payload_bytes, (20 * st.requests + 41 * 1000) as u64, "batch {batch}");
        if zstd {
            assert!(
                st.wire_bytes < st.payload_bytes,
                "zstd must be strictly smaller on compressible data: {st:?}"
            );
        } else {
            assert_eq!(st.wire_bytes, st.payload_bytes);
            // What version 1 would have sent does not meet the bound.
            assert!((st.wire_bytes + 6 * 1000) as f64 > bound, "batch {batch}");
        }
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[test]
fn blocking_fetch_refuses_to_nest_runtimes() {
    let f = fixture();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let e = rt.block_on(async {
        selmask_wire::transfer::client::fetch_split_blocking(
            ClientConfig::default(),
            "x",
            &f.static_art,
            "test",
            None,
        )
    });
    assert!(e.unwrap_err().to_string().contains("inside a tokio runtime"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_load_test_runs_clean() {
    let (state, id, split) = bench::synthetic_state(ServerConfig::default(), 500).unwrap();
    let r = bench::load_test(
        state,
        &id,
        &split,
        &LoadTestConfig {
            requests: 300,
            concurrency: 8,
            ..LoadTestConfig::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((r.requests_sent, r.ok, r.errors), (300, 300, 0), "{r:?}");
    assert!(r.p50_ms > 0.0 && r.p99_ms >= r.p50_ms && r.items == 300);
    // Linux reports the resident set; elsewhere there is none to check.
    if cfg!(target_os = "linux") {
        assert!(r.rss_end_kib.is_some_and(|kib| kib > 0), "{r:?}");
    }
    let (state, id, split) = bench::synthetic_state(ServerConfig::default(), 500).unwrap();
    let cfg = LoadTestConfig {
        requests: 50,
        concurrency: 4,
        batch: 16,
        zstd: true,
        ..LoadTestConfig::default()
    };
    let r = bench::load_test(state, &id, &split, &cfg).await.unwrap();
    assert_eq!((r.ok, r.errors, r.items), (50, 0, 800), "{r:?}");
}

#[test]
fn pack_benchmark_smoke() {
    let r = bench::pack_throughput(&PackBenchConfig {
        min_seconds_per_case: 0.001,
        seed: 1,
    })
    .unwrap();
    assert_eq!(r.cases.len(), 8);
    for c in &r.cases {
        assert!(c.source_gb_per_s > 0.0 && c.items_packed > 0, "{c:?}");
    }
    let grid = &r.cases[2];
    assert!(
        grid.runs < grid.selected_values / 8,
        "12x12 grid cells make long runs: {grid:?}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

    /// Random path segments and bodies: always an answer, never a 5xx or a
    /// panic; malformed input is a 4xx with a JSON error body.
    #[test]
    fn random_requests_get_4xx_not_panics(
        id in "[a-z./%0-9A-F-]{0,12}",
        split in "[a-z./%0-9-]{0,8}",
        index in "[0-9a-z-]{0,22}",
        body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        json_body in "\\{\"indices\": \\[[0-9, -]{0,20}\\]\\}",
    ) {
        static APP: std::sync::OnceLock<Router> = std::sync::OnceLock::new();
        let app = APP.get_or_init(|| app(&fixture()));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let paths = [
                format!("/v1/artifacts/{id}/items/{split}/{index}"),
                format!("/v1/artifacts/toy-static/items/test/{index}"),
            ];
            for p in &paths {
                let Ok(req) = Request::builder().uri(p.as_str()).body(Body::empty()) else { continue };
                let (s, _, b) = call(app, req).await;
                assert!(s.is_success() || (s.is_client_error() && serde_json::from_slice::<ErrorBody>(&b).is_ok()), "{p}: {s}");
            }
            for (uri, payload) in [
                ("/v1/artifacts/toy-static/items/test".to_string(), body.clone()),
                ("/v1/artifacts/toy-static/items/test".to_string(), json_body.clone().into_bytes()),
                (format!("/v1/artifacts/{id}/items/{split}"), body.clone()),
                ("/v1/datasets/toy/labels/test".to_string(), body.clone()),
                ("/v1/datasets/toy/labels/test".to_string(), json_body.clone().into_bytes()),
                (format!("/v1/datasets/{id}/labels/{split}"), json_body.clone().into_bytes()),
            ] {
                let Ok(req) = Request::builder()
                    .method("POST")
                    .uri(uri.as_str())
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(payload))
                else {
                    continue;
                };
                let (s, _, b) = call(app, req).await;
                assert!(s.is_success() || (s.is_client_error() && serde_json::from_slice::<ErrorBody>(&b).is_ok()), "{uri}: {s}");
            }
        });
    }
}
