//! Image sources against images made by real tools: `umoci` builds an OCI
//! layout, `skopeo` copies it into archives and into a local
//! `docker-registry` (plain and with Basic auth, `htpasswd` from
//! apache2-utils).
//!
//! A missing tool skips the test with a note, unless
//! `CFS_TEST_PRIVILEGED=require` is set, which turns it into a failure.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use cfs_oci::source::{Platform, SourceOptions, open_source};
use common::{OCI_MANIFEST, Registry, check_image, have, make_layout, run, sha256};
use serde_json::Value;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Adds tag `v2` (v1 with another config) and tag `multi`, an image index
/// holding v1 as linux/amd64 and v2 as linux/arm64/v8; returns the
/// manifest digests of v1 and v2.
fn add_multi_platform_tag(layout: &Path) -> (String, String) {
    let l = layout.to_str().unwrap();
    run(Command::new("umoci").args([
        "config",
        "--image",
        &format!("{l}:v1"),
        "--tag",
        "v2",
        "--config.env",
        "CFS=v2",
    ]));
    let index_path = layout.join("index.json");
    let mut index: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
    let find = |tag: &str| {
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap()
            .clone()
    };
    let (v1, v2) = (find("v1"), find("v2"));
    let entry = |m: &Value, platform: Value| {
        serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": m["digest"],
            "size": m["size"],
            "platform": platform,
        })
    };
    let nested = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            entry(&v1, serde_json::json!({"os": "linux", "architecture": "amd64"})),
            entry(&v2, serde_json::json!({"os": "linux", "architecture": "arm64", "variant": "v8"})),
        ],
    }))
    .unwrap();
    let digest = sha256(&nested);
    fs::write(layout.join("blobs/sha256").join(&digest[7..]), &nested).unwrap();
    index["manifests"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": digest,
            "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }));
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
    let digest_of = |m: &Value| m["digest"].as_str().unwrap().to_owned();
    (digest_of(&v1), digest_of(&v2))
}

/// `reference` resolves to `amd64` for linux/amd64 and to `arm64` for
/// linux/arm64 (with or without variant); s390x has no image.
fn check_platforms(reference: &str, opts: &SourceOptions, amd64: &str, arm64: &str) {
    let src = open_source(reference, opts).unwrap();
    let digest = |p: &str| src.manifest(&p.parse().unwrap()).map(|m| m.digest);
    assert_eq!(digest("linux/amd64").unwrap(), amd64, "{reference}");
    assert_eq!(digest("linux/arm64").unwrap(), arm64, "{reference}");
    assert_eq!(digest("linux/arm64/v8").unwrap(), arm64, "{reference}");
    let err = digest("linux/s390x").unwrap_err().to_string();
    assert!(
        err.contains("no manifest for platform linux/s390x"),
        "{err}"
    );
}

/// The layers, decompressed by media type, hash to the config's diff_ids.
fn check_diff_ids(config: &Value, layers: &[(String, Vec<u8>)]) {
    let diff_ids: Vec<&str> = config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(diff_ids.len(), layers.len());
    for ((media_type, bytes), diff_id) in layers.iter().zip(diff_ids) {
        let plain = if media_type.ends_with("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        } else if media_type.ends_with("zstd") {
            zstd::decode_all(&bytes[..]).unwrap()
        } else {
            bytes.clone()
        };
        assert_eq!(sha256(&plain), diff_id, "{media_type}");
    }
}

#[test]
fn oci_layout_directory() {
    if !have(&["umoci"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "v1")
        .unwrap();
    let opts = SourceOptions::default();
    let reference = format!("oci:{}:v1", layout.display());
    let src = open_source(&reference, &opts).unwrap();
    assert_eq!(src.describe(), reference);
    let m = src.manifest(&Platform::host()).unwrap();
    assert_eq!(m.digest, entry["digest"].as_str().unwrap());
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);

    // the only image: no tag needed
    let src = open_source(&format!("oci:{}", layout.display()), &opts).unwrap();
    assert_eq!(src.manifest(&Platform::host()).unwrap().digest, m.digest);
    let src = open_source(&format!("oci:{}:nope", layout.display()), &opts).unwrap();
    let err = src.manifest(&Platform::host()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "tag nope not found in OCI layout {} (its tags: v1)",
            layout.display()
        )
    );

    let (amd64, arm64) = add_multi_platform_tag(&layout);
    check_platforms(
        &format!("oci:{}:multi", layout.display()),
        &opts,
        &amd64,
        &arm64,
    );
    // without a tag: entries without platform (v1, v2) only count when
    // alone, so the index is the one match for amd64; none for s390x
    let src = open_source(&format!("oci:{}", layout.display()), &opts).unwrap();
    let amd = src.manifest(&"linux/amd64".parse().unwrap()).unwrap();
    assert_eq!(amd.digest, amd64);
    let err = src
        .manifest(&"linux/s390x".parse().unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tag v1") && err.contains("tag v2") && err.contains("tag multi"),
        "{err}"
    );
}

#[test]
fn oci_and_docker_archives() {
    if !have(&["umoci", "skopeo"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let from = format!("oci:{}:v1", layout.display());
    let oci_archive = dir.path().join("a.tar");
    let docker_archive = dir.path().join("d.tar");
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        &from,
        &format!("oci-archive:{}:v1", oci_archive.display()),
    ]));
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        &from,
        &format!("docker-archive:{}:test/img:v1", docker_archive.display()),
    ]));
    let opts = SourceOptions::default();
    let direct = open_source(&from, &opts)
        .unwrap()
        .manifest(&Platform::host())
        .unwrap();

    let src = open_source(&format!("oci-archive:{}:v1", oci_archive.display()), &opts).unwrap();
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);
    assert_eq!(src.manifest(&Platform::host()).unwrap(), direct);

    // the same archive gzip-compressed
    let gz = dir.path().join("a.tar.gz");
    let mut enc =
        flate2::write::GzEncoder::new(fs::File::create(&gz).unwrap(), flate2::Compression::fast());
    enc.write_all(&fs::read(&oci_archive).unwrap()).unwrap();
    enc.finish().unwrap();
    let src = open_source(&format!("oci-archive:{}", gz.display()), &opts).unwrap();
    assert_eq!(src.manifest(&Platform::host()).unwrap(), direct);
    check_image(src.as_ref(), OCI_MANIFEST);

    for reference in [
        format!("docker-archive:{}:test/img:v1", docker_archive.display()),
        format!("docker-archive:{}", docker_archive.display()),
    ] {
        let src = open_source(&reference, &opts).unwrap();
        let (doc, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
        assert_eq!(doc["schemaVersion"], 2);
        assert_eq!(
            doc["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        check_diff_ids(&config, &layers);
    }
    let src = open_source(
        &format!("docker-archive:{}:test/img:v2", docker_archive.display()),
        &opts,
    );
    let err = src.err().unwrap().to_string();
    assert!(err.contains("no image tagged test/img:v2"), "{err}");
}

#[test]
fn registry_pull() {
    if !have(&["umoci", "skopeo", "docker-registry"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let registry = Registry::start(None);
    registry.push(&layout, "gz", &[]);
    registry.push(&layout, "v2s2", &["--format", "v2s2"]);
    // no credentials from this machine's files
    let auth_file = dir.path().join("empty-auth.json");
    fs::write(&auth_file, r#"{"auths":{}}"#).unwrap();
    let opts = SourceOptions {
        auth_file: Some(auth_file),
        ..SourceOptions::default()
    };
    let base = format!("docker://127.0.0.1:{}/test/img", registry.port);

    let src = open_source(&format!("{base}:gz"), &opts).unwrap();
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);
    let gz = src.manifest(&Platform::host()).unwrap();

    let src = open_source(&format!("{base}:v2s2"), &opts).unwrap();
    let (doc, config, layers) = check_image(src.as_ref(), DOCKER_MANIFEST);
    assert_eq!(doc["mediaType"], DOCKER_MANIFEST);
    check_diff_ids(&config, &layers);

    // by digest
    let src = open_source(&format!("{base}@{}", gz.digest), &opts).unwrap();
    assert_eq!(src.manifest(&Platform::host()).unwrap(), gz);
    let wrong = sha256(b"not the manifest");
    let src = open_source(&format!("{base}@{wrong}"), &opts).unwrap();
    let err = src.manifest(&Platform::host()).unwrap_err().to_string();
    assert!(err.contains(&wrong), "{err}");

    // a multi-platform index, pushed as is
    let (amd64, arm64) = add_multi_platform_tag(&layout);
    run(Command::new("skopeo").args([
        "--insecure-policy",
        "copy",
        "-q",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://127.0.0.1:{}/test/img:multi", registry.port),
    ]));
    check_platforms(&format!("{base}:multi"), &opts, &amd64, &arm64);

    // a blob announced with another size than the descriptor's is refused
    let (digest, size) = first_layer(&gz.bytes);
    let err = src.open_blob(&digest, size + 1).err().unwrap().to_string();
    assert!(err.contains("expected"), "{err}");
}

/// Digest and size of the first layer of a manifest.
fn first_layer(manifest: &[u8]) -> (String, u64) {
    let doc: Value = serde_json::from_slice(manifest).unwrap();
    let l = &doc["layers"][0];
    (
        l["digest"].as_str().unwrap().to_owned(),
        l["size"].as_u64().unwrap(),
    )
}

#[test]
fn registry_basic_auth() {
    if !have(&["umoci", "skopeo", "docker-registry", "htpasswd"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let layout = make_layout(dir.path());
    let htpasswd = dir.path().join("htpasswd");
    run(Command::new("htpasswd").args(["-Bbc", htpasswd.to_str().unwrap(), "cfs", "s3cret"]));
    let registry = Registry::start(Some(&format!(
        "  htpasswd:\n    realm: cfs-test\n    path: {}\n",
        htpasswd.display()
    )));
    registry.push(&layout, "v1", &["--dest-creds", "cfs:s3cret"]);
    let host = format!("127.0.0.1:{}", registry.port);
    let reference = format!("docker://{host}/test/img:v1");

    let auth_file = dir.path().join("auth.json");
    let token = base64::engine::general_purpose::STANDARD.encode("cfs:s3cret");
    fs::write(
        &auth_file,
        format!(r#"{{"auths":{{"{host}/test":{{"auth":"{token}"}}}}}}"#),
    )
    .unwrap();
    let opts = SourceOptions {
        auth_file: Some(auth_file.clone()),
        ..SourceOptions::default()
    };
    let src = open_source(&reference, &opts).unwrap();
    let (_, config, layers) = check_image(src.as_ref(), OCI_MANIFEST);
    check_diff_ids(&config, &layers);

    // without credentials (or with wrong ones) the registry refuses
    for auths in [
        r#"{"auths":{}}"#.to_owned(),
        format!(r#"{{"auths":{{"{host}":{{"username":"cfs","password":"wrong"}}}}}}"#),
    ] {
        fs::write(&auth_file, auths).unwrap();
        let src = open_source(&reference, &opts).unwrap();
        let err = src.manifest(&Platform::host()).unwrap_err().to_string();
        assert!(err.contains(&reference), "{err}");
    }
}
